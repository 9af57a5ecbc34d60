//! Every proto3 JSON mapping rule through the gateway, against the echoing TypesService.

mod common;

use common::{System, assert_status, http, send};
use serde_json::json;

/// All 13 scalar types round-trip in canonical JSON: 64-bit integers as strings, bytes as
/// base64, non-finite floats as strings; numbers in strings are accepted on the way in.
#[tokio::test]
async fn scalars_round_trip() {
    let sys = System::start().await;
    let sent = json!({
        "doubleField": 1.25, "floatField": -0.5, "int32Field": -2147483648, "int64Field": "-9223372036854775808",
        "uint32Field": 4294967295u32, "uint64Field": "18446744073709551615", "sint32Field": -7,
        "sint64Field": "-8", "fixed32Field": 9, "fixed64Field": "10", "boolField": true,
        "stringField": "héllo ✓", "bytesField": "AAEC/w=="
    });
    let (status, got) = send(http().post(sys.url("/api/v1/types/scalars:echo")).json(&sent)).await;
    assert_eq!((status, &got), (200, &sent));

    // Proto names and numbers-as-strings in, canonical out.
    let (status, got) = send(
        http()
            .post(sys.url("/api/v1/types/scalars:echo"))
            .json(&json!({"int32_field": "5", "int64_field": 6, "double_field": "NaN", "float_field": "-Infinity"})),
    )
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["int32Field"], 5);
    assert_eq!(got["int64Field"], "6");
    assert_eq!(got["doubleField"], "NaN");
    assert_eq!(got["floatField"], "-Infinity");
    // Defaults are emitted.
    assert_eq!(got["boolField"], false);
    assert_eq!(got["stringField"], "");
    assert_eq!(got["bytesField"], "");

    // The same message bound from the query string (the GET additional binding).
    let (status, got) = send(http().get(sys.url(
        "/api/v1/types/scalars?int64Field=-3&uint64_field=4&boolField=true&bytesField=AAEC_w&stringField=a%20b&doubleField=Infinity",
    )))
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        (
            &got["int64Field"],
            &got["uint64Field"],
            &got["boolField"],
            &got["bytesField"],
            &got["stringField"],
            &got["doubleField"]
        ),
        (&json!("-3"), &json!("4"), &json!(true), &json!("AAEC/w=="), &json!("a b"), &json!("Infinity"))
    );
}

/// Timestamp (RFC 3339, Z), Duration ("1.5s"), wrappers (value or null) and Empty ({}).
#[tokio::test]
async fn well_known_types_round_trip() {
    let sys = System::start().await;
    let (status, got) = send(http().post(sys.url("/api/v1/types/events:echo")).json(&json!({
        "id": "e1", "createdAt": "2024-02-29T23:59:59.123+01:00", "duration": "1.5s",
        "name": "launch", "count": 0, "status": {}
    })))
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got,
        json!({"id": "e1", "createdAt": "2024-02-29T22:59:59.123Z", "duration": "1.500s",
               "name": "launch", "count": 0, "status": {}})
    );
    // Null means "not set", for wrappers and messages alike; unset messages are left out.
    let (status, got) = send(
        http()
            .post(sys.url("/api/v1/types/events:echo"))
            .json(&json!({"id": "e2", "name": null, "count": null, "createdAt": null})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(got, json!({"id": "e2"}));
    // From the path and the query string.
    let (status, got) = send(
        http().get(sys.url("/api/v1/types/events/e%203?createdAt=1970-01-01T00:00:01Z&duration=-2s&name=&count=-4")),
    )
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got,
        json!({"id": "e 3", "createdAt": "1970-01-01T00:00:01Z", "duration": "-2s", "name": "", "count": -4})
    );
    for bad in [json!({"createdAt": "yesterday"}), json!({"duration": "soon"}), json!({"count": "x"})] {
        assert_status(&send(http().post(sys.url("/api/v1/types/events:echo")).json(&bad)).await, 400, 3);
    }
}

/// A oneof prints only its set member; enums go out by name and come in by name or number;
/// `body: "user"` with `response_body: "user"` moves only that field.
#[tokio::test]
async fn oneofs_enums_and_field_bodies() {
    let sys = System::start().await;
    let (status, got) = send(http().post(sys.url("/api/v1/types/responses:echo")).json(&json!({
        "order": {"orderId": "o1", "items": [{"productId": "p", "quantity": 2, "price": 2.5}], "total": 5.0, "status": 2}
    })))
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got.as_object().unwrap().keys().collect::<Vec<_>>(), ["order"]);
    assert_eq!(got["order"]["status"], "ORDER_STATUS_PAID");
    assert_eq!(got["order"]["items"][0]["name"], "");

    let (status, got) = send(
        http()
            .post(sys.url("/api/v1/types/responses:echo"))
            .json(&json!({"error": {"code": 5, "message": "m", "field": "f"}})),
    )
    .await;
    assert_eq!((status, got), (200, json!({"error": {"code": 5, "message": "m", "field": "f"}})));

    let (status, got) = send(
        http()
            .put(sys.url("/api/v1/types/responses/user"))
            .json(&json!({"name": "Only", "status": "USER_STATUS_SUSPENDED", "roles": ["a"], "metadata": {"k": "v"}})),
    )
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["name"], "Only");
    assert_eq!(got["status"], "USER_STATUS_SUSPENDED");
    assert_eq!(got["metadata"], json!({"k": "v"}));
    assert!(got.get("user").is_none());

    let two = send(http().post(sys.url("/api/v1/types/responses:echo")).json(&json!({"user": {}, "error": {}}))).await;
    assert_status(&two, 400, 3);
    // Open enums: an unknown name is ignored like an unknown field (the field stays unset), an
    // unknown number passes through.
    let (status, got) = send(
        http().post(sys.url("/api/v1/types/responses:echo")).json(&json!({"order": {"status": "SHIPPED_YESTERDAY"}})),
    )
    .await;
    assert_eq!((status, &got["order"]["status"]), (200, &json!("ORDER_STATUS_UNSPECIFIED")));
    let (status, got) =
        send(http().post(sys.url("/api/v1/types/responses:echo")).json(&json!({"order": {"status": 42}}))).await;
    assert_eq!((status, &got["order"]["status"]), (200, &json!(42)));
}

/// `Grpc-Metadata-<name>` headers reach the backend as metadata, and the backend's response
/// metadata comes back as `Grpc-Metadata-<name>` headers (text and `-bin` alike); hop-by-hop
/// names never cross.
#[tokio::test]
async fn metadata_travels_both_ways() {
    let sys = System::start().await;
    let resp = http()
        .post(sys.url("/api/v1/types/scalars:echo"))
        .header("Grpc-Metadata-Echo-Tenant", "acme")
        .header("Grpc-Metadata-Echo-Trace-Bin", "AQID")
        .header("Grpc-Metadata-Connection", "close")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["grpc-metadata-echo-tenant"], "acme");
    assert_eq!(h["grpc-metadata-echo-trace-bin"], "AQID");
    assert!(h.get("grpc-metadata-connection").is_none());
    assert!(h.get("grpc-metadata-content-type").is_none());
}
