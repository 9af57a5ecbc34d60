//! The User API end to end: REST through the real gateway and native gRPC to the real backend.

mod common;

use common::{System, assert_status, http, send};
use serde_json::json;
use switchyard_proto::user::v1::GetUserRequest;

async fn create(sys: &System, name: &str, email: &str, age: i32) -> serde_json::Value {
    let (status, body) =
        send(http().post(sys.url("/api/v1/users")).json(&json!({"name": name, "email": email, "age": age}))).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Create, read, update, list and delete succeed with the shapes a REST client expects.
#[tokio::test]
async fn crud_through_the_gateway() {
    let sys = System::start().await;
    let user = create(&sys, "Ada Lovelace", "ada@example.com", 36).await;
    let id = user["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36);
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["active"], true);
    assert_eq!(user["status"], "USER_STATUS_ACTIVE");
    assert_eq!(user["roles"], json!([]));
    assert_eq!(user["metadata"], json!({}));
    assert_eq!(user["createdAt"]["timezone"], "UTC");
    assert!(user["createdAt"]["timestamp"].as_str().unwrap().parse::<i64>().unwrap() > 1_600_000_000);

    let (status, got) = send(http().get(sys.url(&format!("/api/v1/users/{id}")))).await;
    assert_eq!((status, &got), (200, &user));

    let (status, list) = send(http().get(sys.url("/api/v1/users"))).await;
    assert_eq!(status, 200);
    assert_eq!(list["users"], json!([user]));
    assert_eq!(list["nextPageToken"], "");

    let (status, empty) = send(http().delete(sys.url(&format!("/api/v1/users/{id}")))).await;
    assert_eq!((status, empty), (200, json!({})));
    let gone = send(http().get(sys.url(&format!("/api/v1/users/{id}")))).await;
    assert_status(&gone, 404, 5);
}

/// PATCH without updateMask changes exactly the fields in the body (age 0 included); with a mask
/// only the masked fields change.
#[tokio::test]
async fn patch_with_and_without_update_mask() {
    let sys = System::start().await;
    let id = create(&sys, "Grace", "grace@example.com", 45).await["id"].as_str().unwrap().to_owned();
    let url = sys.url(&format!("/api/v1/users/{id}"));

    let (status, u) = send(http().patch(&url).json(&json!({"age": 0}))).await;
    assert_eq!(status, 200, "{u}");
    assert_eq!((u["age"].clone(), u["name"].clone()), (json!(0), json!("Grace")));

    let (status, u) = send(
        http().patch(&url).json(&json!({"name": "Grace Hopper", "email": "ignored@example.com", "updateMask": "name"})),
    )
    .await;
    assert_eq!(status, 200, "{u}");
    assert_eq!(u["name"], "Grace Hopper");
    assert_eq!(u["email"], "grace@example.com");

    // Proto field names are accepted in the body too.
    let (status, u) =
        send(http().patch(&url).json(&json!({"email": "hopper@example.com", "update_mask": "email"}))).await;
    assert_eq!((status, u["email"].clone()), (200, json!("hopper@example.com")));

    let bad = send(http().patch(&url).json(&json!({"name": "x", "updateMask": "id"}))).await;
    assert_status(&bad, 400, 3);
    let bad = send(http().patch(&url).json(&json!({"age": 151}))).await;
    assert_status(&bad, 400, 3);
    assert_eq!(bad.1["details"][0]["fieldViolations"][0]["field"], "age");
    let missing = send(http().patch(sys.url("/api/v1/users/nope")).json(&json!({"age": 3}))).await;
    assert_status(&missing, 404, 5);
}

/// Validation failures carry google.rpc.BadRequest with one violation per bad field.
#[tokio::test]
async fn validation_errors_name_each_field() {
    let sys = System::start().await;
    let got = send(http().post(sys.url("/api/v1/users")).json(&json!({"name": " ", "email": "nope", "age": -1}))).await;
    assert_status(&got, 400, 3);
    let d = &got.1["details"][0];
    assert_eq!(d["@type"], "type.googleapis.com/google.rpc.BadRequest");
    let fields: Vec<&str> =
        d["fieldViolations"].as_array().unwrap().iter().map(|v| v["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["name", "email", "age"]);

    create(&sys, "A", "dup@example.com", 1).await;
    let dup = send(http().post(sys.url("/api/v1/users")).json(&json!({"name": "B", "email": "DUP@example.com"}))).await;
    assert_status(&dup, 409, 6);
}

/// ListUsers pages in creation order to the end; bad sizes and tokens are INVALID_ARGUMENT.
#[tokio::test]
async fn paging_through_list_users() {
    let sys = System::start().await;
    let mut want = Vec::new();
    for n in 0..7 {
        want.push(create(&sys, &format!("U{n}"), &format!("u{n}@example.com"), n).await["id"].clone());
    }
    let mut got = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        // Proto and lowerCamelCase names both work in the query.
        let q = if pages % 2 == 0 { "page_size=3&page_token=" } else { "pageSize=3&pageToken=" };
        let (status, page) = send(http().get(sys.url(&format!("/api/v1/users?{q}{token}")))).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        got.extend(page["users"].as_array().unwrap().iter().map(|u| u["id"].clone()));
        token = page["nextPageToken"].as_str().unwrap().to_owned();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!((got, pages), (want, 3));
    assert_status(&send(http().get(sys.url("/api/v1/users?pageSize=-1"))).await, 400, 3);
    assert_status(&send(http().get(sys.url("/api/v1/users?pageToken=garbage"))).await, 400, 3);
    assert_status(&send(http().get(sys.url("/api/v1/users?pageSize=ten"))).await, 400, 3);
    let (status, big) = send(http().get(sys.url("/api/v1/users?pageSize=5000"))).await;
    assert_eq!((status, big["users"].as_array().unwrap().len()), (200, 7));
}

/// A user written over REST reads the same over native gRPC, and the other way round.
#[tokio::test]
async fn same_user_over_rest_and_grpc() {
    let sys = System::start().await;
    let rest = create(&sys, "Linus", "linus@example.com", 55).await;
    let mut client = sys.user_client().await;
    let grpc =
        client.get_user(GetUserRequest { user_id: rest["id"].as_str().unwrap().into() }).await.unwrap().into_inner();
    assert_eq!(serde_json::to_value(&grpc).unwrap(), rest);

    let made = client
        .create_user(switchyard_proto::user::v1::CreateUserRequest {
            name: "Ken".into(),
            email: "ken@example.com".into(),
            age: 80,
        })
        .await
        .unwrap()
        .into_inner();
    let (status, via_rest) = send(http().get(sys.url(&format!("/api/v1/users/{}", made.id)))).await;
    assert_eq!(status, 200);
    assert_eq!(via_rest["email"], "ken@example.com");

    // The native client sees the same error details the REST client does.
    let err = client
        .create_user(switchyard_proto::user::v1::CreateUserRequest { name: "".into(), email: "x".into(), age: 1 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    use tonic_types::StatusExt;
    let br = err.get_details_bad_request().unwrap();
    assert_eq!(br.field_violations[0].field, "name");
}

/// The gateway speaks HTTP/2 without TLS (h2c) on the same port, echoes X-Request-Id, and
/// forwards metadata headers.
#[tokio::test]
async fn h2c_request_ids_and_headers() {
    let sys = System::start().await;
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let resp = h2
        .post(sys.url("/api/v1/users"))
        .header("X-Request-Id", "req-123")
        .header("Grpc-Metadata-Tenant", "acme")
        .json(&json!({"name": "H2", "email": "h2@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "req-123");
    let resp = http().get(sys.url("/api/v1/users")).send().await.unwrap();
    let generated = resp.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
}

/// Whole JSON responses are gzipped for clients that ask; streams never are (they must flow
/// message by message).
#[tokio::test]
async fn gzip_for_whole_responses_only() {
    let sys = System::start().await;
    for n in 0..3 {
        create(&sys, &format!("Gzip {n}"), &format!("gz{n}@example.com"), n).await;
    }
    let resp = http().get(sys.url("/api/v1/users")).header("Accept-Encoding", "gzip").send().await.unwrap();
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let user = create(&sys, "Streamer", "streamer@example.com", 1).await;
    let id = user["id"].as_str().unwrap();
    let resp = http()
        .get(sys.url(&format!("/api/v1/users/{id}/orders")))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-encoding").is_none());
}
