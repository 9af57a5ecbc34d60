//! Who may call what, through the gateway: bearer tokens from a token file, JWTs signed with an
//! ES256 key, roles per method, and what stays open.

mod common;

use common::{System, assert_status, http, send};
use serde_json::json;

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// No token: 401 with `WWW-Authenticate: Bearer`; a user may read but not delete (403); an
/// admin may delete; health checks and reflection stay open.
#[tokio::test]
async fn tokens_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "admin-token admin root\nuser-token user ann\n").unwrap();
    let sys = System::start_with(|b| b.auth.auth_tokens = Some(tokens.clone())).await;
    let users = sys.url("/api/v1/users");

    let resp = http().get(&users).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], 16);
    assert_status(&send(http().get(&users).bearer_auth("wrong")).await, 401, 16);

    let (status, user) =
        send(http().post(&users).bearer_auth("user-token").json(&json!({"name": "A", "email": "a@example.com"}))).await;
    assert_eq!(status, 200, "{user}");
    let id = user["id"].as_str().unwrap();
    let one = sys.url(&format!("/api/v1/users/{id}"));
    assert_eq!(send(http().get(&one).bearer_auth("user-token")).await.0, 200);
    assert_status(&send(http().delete(&one).bearer_auth("user-token")).await, 403, 7);
    assert_eq!(send(http().delete(&one).bearer_auth("admin-token")).await.0, 200);

    // Health checks and reflection need no token.
    let mut health = tonic_health::pb::health_client::HealthClient::new(sys.channel().await);
    let h = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap();
    assert_eq!(h.into_inner().status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
    // Native gRPC clients authenticate with the same metadata.
    let mut client = sys.user_client().await;
    let denied = client.get_user(switchyard_proto::user::v1::GetUserRequest { user_id: "x".into() }).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::Unauthenticated);
}

/// JWTs signed with an ES256 key, checked against its public key (PEM), with issuer, audience
/// and expiry; roles from the `roles` claim.
#[tokio::test]
async fn es256_jwts() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let public = dir.path().join("public.pem");
    std::fs::write(&public, key.public_key_pem()).unwrap();
    let sys = System::start_with(|b| {
        b.auth.jwt_public_key = Some(public.clone());
        b.auth.jwt_issuer = Some("https://issuer.example".into());
        b.auth.jwt_audience = Some("switchyard".into());
    })
    .await;
    let signing = jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
    let sign = |claims: serde_json::Value| {
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256), &claims, &signing).unwrap()
    };
    let good = sign(
        json!({"sub": "svc", "roles": ["admin"], "iss": "https://issuer.example", "aud": "switchyard", "exp": now() + 60}),
    );
    let got = send(http().get(sys.url("/api/v1/users")).bearer_auth(&good)).await;
    assert_eq!(got.0, 200, "{}", got.1);
    let expired =
        sign(json!({"roles": ["admin"], "iss": "https://issuer.example", "aud": "switchyard", "exp": now() - 120}));
    assert_status(&send(http().get(sys.url("/api/v1/users")).bearer_auth(&expired)).await, 401, 16);
    let no_role =
        sign(json!({"roles": ["guest"], "iss": "https://issuer.example", "aud": "switchyard", "exp": now() + 60}));
    assert_status(&send(http().get(sys.url("/api/v1/users")).bearer_auth(&no_role)).await, 403, 7);
}

/// The same with the key given as a JWKS file, the signing key picked by the token's `kid`.
#[tokio::test]
async fn jwks_keys_by_kid() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = key.public_key_raw();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]), "kid": "k1", "alg": "ES256", "use": "sig"}]});
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks.to_string()).unwrap();
    let sys = System::start_with(|b| b.auth.jwt_public_key = Some(file.clone())).await;
    let signing = jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("k1".into());
    let token = jsonwebtoken::encode(&header, &json!({"scope": "user", "exp": now() + 60}), &signing).unwrap();
    assert_eq!(send(http().get(sys.url("/api/v1/users")).bearer_auth(&token)).await.0, 200);
    header.kid = Some("k2".into());
    let token = jsonwebtoken::encode(&header, &json!({"scope": "user", "exp": now() + 60}), &signing).unwrap();
    assert_status(&send(http().get(sys.url("/api/v1/users")).bearer_auth(&token)).await, 401, 16);
}
