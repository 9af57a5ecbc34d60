//! openapi.yaml: generated, committed, served, valid OpenAPI 3.1, and exactly the gateway's
//! API routes.

mod common;

use common::{System, http};
use serde_json::Value;
use std::collections::BTreeSet;

fn committed() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap()
}

/// The committed file is exactly what `switchyard openapi` prints.
#[test]
fn committed_document_matches_the_generator() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard")).arg("openapi").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let generated = String::from_utf8(out.stdout).unwrap();
    assert!(
        generated == committed(),
        "openapi.yaml is stale: regenerate it with `cargo run -- openapi > openapi.yaml`"
    );
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// The document parses as OpenAPI 3.1, every reference resolves, and its operations are exactly
/// the routes the running gateway serves: each documented route is routed (no 404 "no route",
/// no 405), and every binding is documented. The gateway serves the same document.
#[tokio::test]
async fn document_is_valid_and_lists_exactly_the_served_routes() {
    let yaml = committed();
    let spec = oas3::from_yaml(&yaml).expect("parses as OpenAPI 3.1");
    let version = spec.validate_version().unwrap();
    assert_eq!((version.major, version.minor), (3, 1));

    let doc: Value = yaml_serde::from_str(&yaml).unwrap();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected ref {r}"));
        assert!(doc["components"]["schemas"].get(name).is_some(), "dangling $ref {r}");
    }

    let documented: BTreeSet<(String, String)> =
        spec.operations().map(|(path, method, _)| (method.to_string(), path)).collect();
    let pool = prost_reflect::DescriptorPool::decode(switchyard_proto::FILE_DESCRIPTOR_SET).unwrap();
    let served: BTreeSet<(String, String)> = gateway::rules::load_bindings(&pool)
        .unwrap()
        .iter()
        .map(|b| (b.http_method.to_string(), gateway::openapi::openapi_path(b)))
        .collect();
    assert_eq!(documented, served);
    for (_, path) in &documented {
        assert!(!path.contains("openapi") && !path.contains("healthz"), "{path} is the gateway's own");
    }

    let sys = System::start().await;
    for (method, path) in &documented {
        let concrete = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/")
            .replace("{x}", "x");
        let concrete = match concrete.split_once('{') {
            Some(_) => panic!("unsubstituted variable in {path}"),
            None => concrete,
        };
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = http().request(method.clone(), sys.url(&concrete)).body("").send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_ne!(status, 405, "{method} {concrete}: {body}");
        assert!(!(status == 404 && body.contains("no route")), "{method} {concrete} is not routed: {body}");
    }

    let served_yaml = http().get(sys.url("/openapi.yaml")).send().await.unwrap().text().await.unwrap();
    assert!(served_yaml == yaml, "GET /openapi.yaml differs from openapi.yaml");
    let served_json: Value = http().get(sys.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(served_json == doc, "GET /openapi.json differs from openapi.yaml");
}
