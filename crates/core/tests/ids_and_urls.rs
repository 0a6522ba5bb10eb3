//! Document ids, URLs and heads agree with what automerge-repo 2.5.6 computed and accepted.

use crate::common::fixture;
use automerge::ChangeHash;
use serde_json::Value;
use tandem_core::{url_heads, AutomergeUrl, DocumentId, InvalidUrl, UrlHead};

fn text(value: &Value) -> &str {
    value.as_str().expect("a string")
}

#[test]
fn fixed_ids_encode_and_parse_like_js() {
    let ids = fixture("document_ids.json");
    for v in ids["vectors"].as_array().expect("vectors") {
        let bytes = hex::decode(text(&v["binaryHex"])).expect("hex");
        let id = DocumentId::from_bytes(&bytes);
        assert_eq!(
            id.as_str(),
            text(&v["documentId"]),
            "encoding {}",
            text(&v["binaryHex"])
        );
        assert_eq!(id.url().to_string(), text(&v["url"]));
        let parsed: DocumentId = text(&v["documentId"]).parse().expect("valid id");
        assert_eq!(
            hex::encode(parsed.as_bytes()),
            text(&v["roundTripBinaryHex"])
        );
        assert_eq!(parsed, id);
    }
}

#[test]
fn js_generated_ids_are_uuid_v4_bytes() {
    let ids = fixture("document_ids.json");
    for g in ids["generated"].as_array().expect("generated") {
        let id: DocumentId = text(&g["documentId"]).parse().expect("valid id");
        assert_eq!(hex::encode(id.as_bytes()), text(&g["binaryHex"]));
        let url: AutomergeUrl = text(&g["url"]).parse().expect("valid url");
        assert_eq!(url.document_id(), &id);
        assert_eq!(DocumentId::from_legacy_uuid(text(&g["uuidForm"])), Some(id));
    }
}

#[test]
fn urls_with_heads_parse_and_render_like_js() {
    let ids = fixture("document_ids.json");
    for u in ids["urlsWithHeads"].as_array().expect("urlsWithHeads") {
        let url: AutomergeUrl = text(&u["url"]).parse().expect("valid url");
        let heads = url.heads().expect("has heads");
        let rendered: Vec<String> = heads.iter().map(|h| h.to_string()).collect();
        let hexes: Vec<String> = heads.iter().map(UrlHead::to_hex).collect();
        assert_eq!(
            serde_json::to_value(&rendered).unwrap(),
            u["parsed"]["heads"]
        );
        assert_eq!(
            serde_json::to_value(&hexes).unwrap(),
            u["parsed"]["hexHeads"]
        );
        assert_eq!(url.to_string(), text(&u["url"]), "display round trip");
        // Hex heads → change hashes → URL heads, the way handle.heads() will produce them.
        let hashes: Vec<ChangeHash> = hexes
            .iter()
            .map(|h| h.parse().expect("change hash"))
            .collect();
        assert_eq!(url.change_hashes().unwrap(), Some(hashes.clone()));
        assert_eq!(url_heads(&hashes), heads);
        let rebuilt = AutomergeUrl::with_heads(url.document_id().clone(), url_heads(&hashes));
        assert_eq!(rebuilt.to_string(), text(&u["url"]));
    }
}

/// The validation table: for every input, our three parsers agree with `isValidAutomergeUrl`,
/// `isValidDocumentId` and `interpretAsDocumentId`, and URL parsing yields the ids and heads
/// `parseAutomergeUrl` yielded.
#[test]
fn validation_table_matches_js_exactly() {
    let ids = fixture("document_ids.json");
    let rows = ids["validation"].as_array().expect("validation");
    assert!(rows.len() >= 20);
    for row in rows {
        let input = text(&row["input"]);
        let url = input.parse::<AutomergeUrl>();
        assert_eq!(
            url.is_ok(),
            row["isValidAutomergeUrl"] == true,
            "isValidAutomergeUrl({input:?}): {url:?}"
        );
        let id = input.parse::<DocumentId>();
        assert_eq!(
            id.is_ok(),
            row["isValidDocumentId"] == true,
            "isValidDocumentId({input:?})"
        );
        if let (Ok(id), Some(binary)) = (&id, row["documentIdToBinaryHex"].as_str()) {
            assert_eq!(
                hex::encode(id.as_bytes()),
                binary,
                "documentIdToBinary({input:?})"
            );
        }
        let interpreted = DocumentId::interpret(input);
        match row["interpretAsDocumentId"].as_str().expect("string") {
            js if js.starts_with("throws: ") => {
                let err = interpreted.expect_err(input);
                assert_eq!(format!("throws: {err}"), js, "the error text matches JS");
            }
            js => assert_eq!(
                interpreted.expect(input).as_str(),
                js,
                "interpretAsDocumentId({input:?})"
            ),
        }
        if let (Ok(url), Some(parsed)) = (&url, row["parseAutomergeUrl"].as_object()) {
            assert_eq!(url.document_id().as_str(), text(&parsed["documentId"]));
            assert_eq!(
                hex::encode(url.document_id().as_bytes()),
                text(&parsed["binaryHex"])
            );
            let heads = url
                .heads()
                .map(|h| h.iter().map(|h| h.to_string()).collect::<Vec<_>>());
            assert_eq!(
                heads.map(|h| serde_json::to_value(h).unwrap()),
                parsed.get("heads").cloned(),
                "heads of {input:?}"
            );
        }
    }
}

#[test]
fn url_errors_name_the_problem() {
    let good = "automerge:2kGRUrX8w2KjaHC3xek1kijSVeee";
    assert_eq!(
        format!("{good}#a#b").parse::<AutomergeUrl>(),
        Err(InvalidUrl::MultipleHeadsSections)
    );
    assert_eq!(
        format!("{good}#abc").parse::<AutomergeUrl>(),
        Err(InvalidUrl::InvalidHead("abc".into()))
    );
    assert!(matches!(
        format!("{good}#x|").parse::<AutomergeUrl>(),
        Err(InvalidUrl::InvalidHead(_))
    ));
    assert!(matches!(
        "automerge:2kGRUrX8w2KjaHC3xek1kijSVeea".parse::<AutomergeUrl>(),
        Err(InvalidUrl::InvalidDocumentId(_))
    ));
    // A head that is valid Base58Check but not 32 bytes parses (as in JS) and is refused as a hash.
    let short = AutomergeUrl::with_heads(DocumentId::random(), vec!["3QJmnh".parse().unwrap()]);
    let reparsed: AutomergeUrl = short
        .to_string()
        .parse()
        .expect("JS accepts any Base58Check head");
    assert!(matches!(
        reparsed.change_hashes(),
        Err(InvalidUrl::NotAChangeHash { len: 0, .. })
    ));
}

#[test]
fn legacy_uuid_maps_to_its_base58_id() {
    let ids = fixture("document_ids.json");
    for row in ids["legacyUuid"].as_array().expect("legacyUuid") {
        let id = DocumentId::from_legacy_uuid(text(&row["uuid"])).expect("a valid UUID");
        assert_eq!(id.as_str(), text(&row["interpretAsDocumentId"]));
        assert_eq!(hex::encode(id.as_bytes()), text(&row["expectedBinaryHex"]));
        let url = format!("automerge:{}", text(&row["uuid"]));
        assert!(
            url.parse::<AutomergeUrl>().is_err(),
            "automerge:<uuid> is not a URL"
        );
        assert!(
            text(&row["uuid"]).parse::<DocumentId>().is_err(),
            "a UUID is not a document id"
        );
    }
}

#[test]
fn document_heads_convert_between_hex_and_base58() {
    let docs = fixture("automerge_docs.json");
    for doc in docs["docs"].as_array().expect("docs") {
        let hashes: Vec<ChangeHash> = doc["hexHeads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| text(h).parse().unwrap())
            .collect();
        let rendered: Vec<String> = url_heads(&hashes).iter().map(|h| h.to_string()).collect();
        assert_eq!(
            serde_json::to_value(&rendered).unwrap(),
            doc["urlHeads"],
            "{}",
            doc["name"]
        );
        for (head, hash) in doc["urlHeads"].as_array().unwrap().iter().zip(&hashes) {
            assert_eq!(
                text(head)
                    .parse::<UrlHead>()
                    .unwrap()
                    .change_hash()
                    .unwrap(),
                *hash
            );
        }
    }
}
