//! TLS on both legs, with certificates made here at run time: HTTPS on the gateway (HTTP/1.1
//! and HTTP/2 by ALPN), certificates reloaded on SIGHUP without dropping connections, and
//! mutual TLS between the gateway and the backend — a gateway without a certificate, with one
//! from another CA or with an expired one is refused, and the client gets 503 with a Status.

mod common;

use common::{System, assert_status, send};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use std::path::{Path, PathBuf};
use std::time::Duration;
use switchyard_common::tls::ServerFiles;

/// A certificate authority for the test.
struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    fn pem(&self) -> String {
        self.0.pem()
    }

    /// A certificate and key (PEM) for these names (IP addresses become IP names).
    fn issue(&self, names: &[&str], expired: bool) -> (String, String) {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("client"));
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// An HTTPS client that trusts only `ca`.
fn client(ca: &Ca, http1_only: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap());
    let builder = if http1_only { builder.http1_only() } else { builder };
    builder.build().unwrap()
}

/// The gateway serves HTTPS, HTTP/2 or HTTP/1.1 as the client's ALPN asks; after the files
/// change and SIGHUP, new connections get the new certificate while a connection made before
/// keeps working.
#[tokio::test]
async fn https_gateway_reloads_its_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (Ca::new("first"), Ca::new("second"));
    let (cert, key) = first.issue(&["localhost", "127.0.0.1"], false);
    let files = ServerFiles {
        cert: write(dir.path(), "cert.pem", &cert),
        key: write(dir.path(), "key.pem", &key),
        client_ca: None,
    };
    let sys = System::start_gateway_with(|g| g.tls = Some(files.clone())).await;
    assert!(sys.base.starts_with("https://"));
    let users = sys.url("/api/v1/users");

    let h2 = client(&first, false);
    let resp = h2.get(&users).send().await.unwrap();
    assert_eq!((resp.status().as_u16(), resp.version()), (200, reqwest::Version::HTTP_2));
    let h1 = client(&first, true);
    let resp = h1.get(&users).send().await.unwrap();
    assert_eq!((resp.status().as_u16(), resp.version()), (200, reqwest::Version::HTTP_11));
    // Plain HTTP on the HTTPS port gets nowhere.
    assert!(common::http().get(users.replace("https://", "http://")).send().await.is_err());

    // A certificate from the second CA, and SIGHUP.
    let (cert, key) = second.issue(&["localhost", "127.0.0.1"], false);
    write(dir.path(), "cert.pem", &cert);
    write(dir.path(), "key.pem", &key);
    // SAFETY: kill on our own pid; the servers have registered their SIGHUP handlers (they
    // have served requests), so the signal is caught, never the default action.
    unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
    let fresh = client(&second, false);
    let mut reloaded = false;
    for _ in 0..100 {
        if fresh.get(&users).send().await.is_ok_and(|r| r.status() == 200) {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded, "the new certificate is served after SIGHUP");
    // The connections made before the reload are still up.
    assert_eq!(h2.get(&users).send().await.unwrap().status(), 200);
    assert_eq!(h1.get(&users).send().await.unwrap().status(), 200);
    // New connections trusting only the first CA are refused now.
    assert!(client(&first, false).get(&users).send().await.is_err());
}

/// Mutual TLS between gateway and backend: with the right CA and a client certificate calls go
/// through; without a certificate, with one from another CA, with an expired one, or without
/// trusting the backend's CA, the gateway answers 503 (UNAVAILABLE) with a Status body.
#[tokio::test]
async fn mutual_tls_between_gateway_and_backend() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server_ca, client_ca, other_ca) = (Ca::new("servers"), Ca::new("clients"), Ca::new("other"));
    let (cert, key) = server_ca.issue(&["127.0.0.1"], false);
    let backend_tls = ServerFiles {
        cert: write(d, "backend.pem", &cert),
        key: write(d, "backend.key", &key),
        client_ca: Some(write(d, "clients-ca.pem", &client_ca.pem())),
    };
    let servers_ca = write(d, "servers-ca.pem", &server_ca.pem());
    let (cert, key) = client_ca.issue(&["gateway"], false);
    let (good_cert, good_key) = (write(d, "gw.pem", &cert), write(d, "gw.key", &key));
    let sys = System::start_configured(
        |b| b.tls = Some(backend_tls.clone()),
        |g| {
            g.backend_ca = Some(servers_ca.clone());
            g.backend_cert = Some(good_cert.clone());
            g.backend_key = Some(good_key.clone());
        },
    )
    .await;
    let (status, body) = send(common::http().post(sys.url("/api/v1/users")).json(&serde_json::json!({
        "name": "T", "email": "t@example.com"
    })))
    .await;
    assert_eq!(status, 200, "{body}");

    let (cert, key) = other_ca.issue(&["gateway"], false);
    let (other_cert, other_key) = (write(d, "other.pem", &cert), write(d, "other.key", &key));
    let (cert, key) = client_ca.issue(&["gateway"], true);
    let (old_cert, old_key) = (write(d, "old.pem", &cert), write(d, "old.key", &key));
    let cases: [(&str, Option<&PathBuf>, Option<CertAndKey>); 4] = [
        ("no client certificate", Some(&servers_ca), None),
        ("a certificate from another CA", Some(&servers_ca), Some((&other_cert, &other_key))),
        ("an expired certificate", Some(&servers_ca), Some((&old_cert, &old_key))),
        ("not trusting the backend", None, Some((&good_cert, &good_key))),
    ];
    for (case, ca, cert) in cases {
        let mut config = gateway::Config::for_backend(format!("https://{}", sys.grpc));
        config.backend_ca = ca.cloned();
        config.backend_cert = cert.map(|c| c.0.clone());
        config.backend_key = cert.map(|c| c.1.clone());
        let base = start_gateway(config).await;
        let got = send(common::http().get(format!("{base}/api/v1/users"))).await;
        assert_status(&got, 503, 14);
        assert!(got.1["message"].as_str().unwrap().contains("backend"), "{case}: {}", got.1);
    }
}

/// A client certificate and its key.
type CertAndKey<'a> = (&'a PathBuf, &'a PathBuf);

async fn start_gateway(config: gateway::Config) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { gateway::run(listener, &config, std::future::pending()).await });
    base
}
