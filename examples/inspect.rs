//! Explains automerge-repo identifiers and wire frames.
//!
//! ```text
//! cargo run --example inspect -- automerge:2kGRUrX8w2KjaHC3xek1kijSVeee
//! cargo run --example inspect -- 7d52c1a6-f3b3-4b0e-9a1f-2a3b4c5d6e7f
//! cargo run --example inspect -- b9000464747970656f646f632d756e617661696c61626c65…
//! ```
//!
//! Each argument may be an automerge URL (with or without heads), a document id, a legacy UUID
//! id, or the hex of one WebSocket frame. Exits 2 if any argument is none of these.

use std::process::ExitCode;

use tandem::{AutomergeUrl, DocumentId, Message};

fn describe(arg: &str) -> Result<String, String> {
    if let Ok(url) = arg.parse::<AutomergeUrl>() {
        let mut out = format!(
            "automerge URL\n  document id: {}\n  id bytes:    {}",
            url.document_id(),
            hex::encode(url.document_id().as_bytes())
        );
        match url.heads() {
            None => out.push_str("\n  heads:       none (the current document)"),
            Some(heads) => {
                out.push_str(&format!("\n  heads:       {} (a fixed view)", heads.len()));
                for head in heads {
                    out.push_str(&format!("\n    {head}\n      = {}", head.to_hex()));
                }
            }
        }
        return Ok(out);
    }
    if let Ok(id) = arg.parse::<DocumentId>() {
        return Ok(format!(
            "document id\n  bytes: {}\n  url:   {}",
            hex::encode(id.as_bytes()),
            id.url()
        ));
    }
    if let Some(id) = DocumentId::from_legacy_uuid(arg) {
        return Ok(format!(
            "legacy UUID id\n  document id: {id}\n  url:         {}",
            id.url()
        ));
    }
    let frame = hex::decode(arg.trim())
        .map_err(|_| format!("{arg:?}: not a URL, document id, UUID or hex frame"))?;
    let message = Message::decode(&frame).map_err(|e| format!("{arg:.40}…: not a message: {e}"))?;
    Ok(format!(
        "{} frame ({} bytes)\n  {message:#?}",
        message.type_name(),
        frame.len()
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("usage: inspect <automerge URL | document id | UUID | frame hex>…");
        return ExitCode::from(2);
    }
    let mut status = ExitCode::SUCCESS;
    for arg in &args {
        match describe(arg) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("{error}");
                status = ExitCode::from(2);
            }
        }
    }
    status
}
