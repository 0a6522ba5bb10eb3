//! Every scenario at a tiny size against every system built in, with tandem's client and (S1,
//! S2) the JS client: each produces a measured figure, not a skip. (The real sizes take minutes
//! to hours: `cargo run -p tandem-bench --release`.)

use std::process::Command;

#[test]
fn every_scenario_runs_at_a_tiny_size_against_every_system() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("figures.jsonl");
    let mut systems = vec!["tandem", "tandem-tmpfs", "js"];
    if cfg!(feature = "samod") {
        systems.push("samod");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_tandem-bench"))
        .args([
            "--quick",
            "--cap-seconds",
            "120",
            "--systems",
            &systems.join(","),
            "--clients",
            "tandem,js",
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("the bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");

    let figures: Vec<serde_json::Value> = std::fs::read_to_string(&json)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let find_by = |scenario: &str, system: &str, client: &str| {
        figures
            .iter()
            .find(|f| f["scenario"] == scenario && f["system"] == system && f["client"] == client)
            .unwrap_or_else(|| {
                panic!("no {scenario} figure for {system} with the {client} client:\n{stdout}")
            })
    };
    let find = |scenario: &str, system: &str| find_by(scenario, system, "tandem");
    let floor = find_by("floor", "floor", "-");
    assert!(floor["wall_ms"].as_f64().unwrap() > 0.0);
    for system in systems {
        for scenario in ["s1", "s2", "s3", "s4", "s5"] {
            let figure = find(scenario, system);
            if let Some(why) = figure.get("skipped").and_then(|w| w.as_str()) {
                // The JS server, restarted on S1's directory, answers a find for a document
                // that is on its disk "unavailable" in about one run in five (seen 2026-11-23,
                // with the document's snapshot file present). That is the JS server's bug,
                // not the bench's: it is tolerated there, and only there.
                assert!(
                    system == "js" && scenario == "s5" && why.contains("is unavailable"),
                    "{scenario} on {system} was skipped: {figure}"
                );
                continue;
            }
            assert!(figure["wall_ms"].as_f64().unwrap() > 0.0, "{figure}");
            assert!(figure["server_cpu_ms"].as_f64().is_some(), "{figure}");
            assert!(
                figure["server_peak_rss_kib"].as_u64().unwrap() > 0,
                "{figure}"
            );
        }
        let latency = find("s2", system);
        assert!(latency["p50_ms"].as_f64().unwrap() > 0.0);
        for scenario in ["s1", "s2"] {
            let figure = find_by(scenario, system, "js");
            assert!(
                figure.get("skipped").is_none(),
                "{scenario} on {system} with the JS client was skipped: {figure}"
            );
            assert!(figure["client_cpu_ms"].as_f64().unwrap() > 0.0, "{figure}");
            assert!(figure["server_cpu_ms"].as_f64().is_some(), "{figure}");
        }
        assert!(find_by("s1", system, "js")["found_ms"].as_f64().is_some());
        assert!(find_by("s2", system, "js")["p50_ms"].as_f64().unwrap() > 0.0);
    }
    // The table names every system and gives ratios against tandem.
    assert!(stdout.contains("tandem/js"), "{stdout}");
    assert!(stdout.contains("tandem/floor"), "{stdout}");
    // The floor is compared with tandem's client only (the JS client's time is mostly Node's).
    assert_eq!(
        stdout.matches("tandem/floor").count(),
        1,
        "one S1 row with tandem's client against tandem: {stdout}"
    );
}
