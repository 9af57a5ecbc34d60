//! TLS for both servers and for the gateway's backend connections, with rustls and the `ring`
//! provider passed explicitly (never the process default, which panics when two providers meet
//! through feature unification).
//!
//! Certificates reload on SIGHUP without dropping connections: each configuration lives behind
//! an `ArcSwap`; a handshake takes the current one, so live connections keep the session they
//! made and new ones get the new files. A reload that fails keeps the old configuration.

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// ALPN for a server that speaks HTTP/2 only (gRPC).
pub const ALPN_H2: &[&[u8]] = &[b"h2"];
/// ALPN for a server that speaks both HTTP versions (the gateway).
pub const ALPN_H2_HTTP1: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Why TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: rustls::pki_types::pem::Error },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("{what}: {source}")]
    Rustls { what: &'static str, source: rustls::Error },
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("{0}")]
    Flags(&'static str),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |reason| TlsError::Read { path: path.to_owned(), reason };
    let certs = CertificateDer::pem_file_iter(path).map_err(read)?.collect::<Result<Vec<_>, _>>().map_err(read)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_owned() });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|reason| TlsError::Read { path: path.to_owned(), reason })
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path)? {
        roots.add(cert).map_err(|source| TlsError::Rustls { what: "CA certificate", source })?;
    }
    Ok(roots)
}

/// The files a server's TLS is made of.
#[derive(Debug, Clone)]
pub struct ServerFiles {
    /// Certificate chain (PEM), the server's own first.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When set, clients must present a certificate this CA (PEM) signed.
    pub client_ca: Option<PathBuf>,
}

impl ServerFiles {
    /// The files from the flags: none, or a certificate with its key (and maybe a client CA),
    /// read once here so that a server with unusable files fails before it says it listens.
    pub fn from_flags(
        cert: Option<&PathBuf>,
        key: Option<&PathBuf>,
        client_ca: Option<&PathBuf>,
    ) -> Result<Option<Self>, TlsError> {
        match (cert, key) {
            (Some(cert), Some(key)) => {
                let files = ServerFiles { cert: cert.clone(), key: key.clone(), client_ca: client_ca.cloned() };
                files.config(&[])?;
                Ok(Some(files))
            }
            (None, None) if client_ca.is_none() => Ok(None),
            (None, None) => Err(TlsError::Flags("a client CA needs --tls-cert and --tls-key")),
            _ => Err(TlsError::Flags("--tls-cert and --tls-key go together")),
        }
    }

    fn config(&self, alpn: &[&[u8]]) -> Result<ServerConfig, TlsError> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Rustls { what: "protocol versions", source })?;
        let builder = match &self.client_ca {
            Some(ca) => builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                    .build()?,
            ),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certificates(&self.cert)?, private_key(&self.key)?)
            .map_err(|source| TlsError::Rustls { what: "certificate and key", source })?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

/// A server's TLS: the current configuration, reloadable.
#[derive(Debug)]
pub struct ServerTls {
    files: ServerFiles,
    alpn: &'static [&'static [u8]],
    current: ArcSwap<ServerConfig>,
}

impl ServerTls {
    /// Reads the files; fails on anything unusable, so a server never starts half-configured.
    pub fn load(files: ServerFiles, alpn: &'static [&'static [u8]]) -> Result<Arc<Self>, TlsError> {
        let config = files.config(alpn)?;
        Ok(Arc::new(ServerTls { files, alpn, current: ArcSwap::from_pointee(config) }))
    }

    /// An acceptor with the configuration of this moment.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
    }

    /// Whether clients must present a certificate.
    pub fn requires_client_certificates(&self) -> bool {
        self.files.client_ca.is_some()
    }
}

/// The TLS the gateway dials its backends with: the CA it trusts, and its own certificate for
/// mutual TLS.
#[derive(Debug, Clone, Default)]
pub struct ClientFiles {
    /// The CA (PEM) backends' certificates must chain to; the system's roots when unset.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
}

impl ClientFiles {
    fn config(&self) -> Result<ClientConfig, TlsError> {
        let roots = match &self.ca {
            Some(ca) => roots(ca)?,
            None => {
                let mut roots = RootCertStore::empty();
                let found = rustls_native_certs::load_native_certs();
                for e in &found.errors {
                    tracing::warn!(error = %e, "reading the system's CA certificates");
                }
                roots.add_parsable_certificates(found.certs);
                roots
            }
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Rustls { what: "protocol versions", source })?
            .with_root_certificates(roots);
        let mut config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(certificates(cert)?, private_key(key)?)
                .map_err(|source| TlsError::Rustls { what: "client certificate and key", source })?,
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(TlsError::Flags("--backend-cert and --backend-key go together")),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// The gateway's client TLS: the current configuration, reloadable.
#[derive(Debug)]
pub struct ClientTls {
    files: ClientFiles,
    current: ArcSwap<ClientConfig>,
}

impl ClientTls {
    /// Reads the files; fails on anything unusable.
    pub fn load(files: ClientFiles) -> Result<Arc<Self>, TlsError> {
        let config = files.config()?;
        Ok(Arc::new(ClientTls { files, current: ArcSwap::from_pointee(config) }))
    }

    /// A connector with the configuration of this moment.
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.current.load_full())
    }
}

/// Something whose certificates can be read again.
pub trait Reload: Send + Sync + 'static {
    /// Reads the files again; on failure the old configuration stays.
    fn reload(&self) -> Result<(), TlsError>;
}

impl Reload for ServerTls {
    fn reload(&self) -> Result<(), TlsError> {
        self.current.store(Arc::new(self.files.config(self.alpn)?));
        Ok(())
    }
}

impl Reload for ClientTls {
    fn reload(&self) -> Result<(), TlsError> {
        self.current.store(Arc::new(self.files.config()?));
        Ok(())
    }
}

/// Reads `tls` again on every SIGHUP, for as long as the process runs; a failed reload is
/// logged and the old certificates stay in use.
pub fn reload_on_sighup(what: &'static str, tls: Arc<dyn Reload>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::warn!(what, "cannot watch SIGHUP; certificates will not reload");
            return;
        };
        while hangups.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!(what, "certificates reloaded"),
                Err(e) => tracing::error!(what, error = %e, "certificate reload failed; keeping the old ones"),
            }
        }
    });
}
