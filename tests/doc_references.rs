//! Every reference to a section of `docs/*.md` written as `docs/<page>.md#<anchor>` (in rustdoc,
//! comments and the docs themselves) names a heading that exists, by GitHub's anchor rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// GitHub's anchor for a heading: lowercase, punctuation other than `-` and `_` dropped, spaces
/// as hyphens; a repeated heading gets `-1`, `-2`...
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        let Some(title) = line.trim_start_matches('#').strip_prefix(' ') else {
            continue;
        };
        if in_code || !line.starts_with('#') {
            continue;
        }
        let slug: String = title
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        anchors.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    anchors
}

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(&*name, "target" | "node_modules" | ".git" | "dist") {
                sources(&path, found);
            }
        } else if name.ends_with(".rs") || name.ends_with(".md") {
            found.push(path);
        }
    }
}

#[test]
fn every_docs_section_reference_names_a_heading() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(root, &mut files);
    let mut pages: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for (at, _) in text.match_indices("docs/") {
            let rest = &text[at + "docs/".len()..];
            let Some((page, after)) = rest.split_once(".md#") else {
                continue;
            };
            if page.is_empty()
                || !page
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
            {
                continue;
            }
            let anchor: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || matches!(c, '-' | '_'))
                .collect();
            let headings = pages.entry(page.to_owned()).or_insert_with(|| {
                std::fs::read_to_string(root.join("docs").join(format!("{page}.md")))
                    .map(|markdown| anchors(&markdown))
                    .unwrap_or_default()
            });
            checked += 1;
            if !headings.contains(&anchor) {
                broken.push(format!(
                    "{}: docs/{page}.md#{anchor}",
                    file.strip_prefix(root).unwrap_or(file).display()
                ));
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} references found: is the scan looking in the right place?"
    );
    assert!(
        broken.is_empty(),
        "references to sections that do not exist:\n{}",
        broken.join("\n")
    );
}
