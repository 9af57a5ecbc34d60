//! Authentication and authorization, as a tower layer in front of every service.
//!
//! A caller proves who it is with `authorization: Bearer <token>`: a token from the token file
//! (`TOKEN ROLE[,ROLE…] [SUBJECT]` a line), or a JWT checked against an HS256 secret or an
//! RS256/ES256 public key (PEM, or a JWKS file chosen by `kid`), with expiry, not-before, issuer
//! and audience. Its roles come from the token file, or the JWT's `roles` claim (an array), else
//! its space-separated `scope`. A policy gives the roles each method needs (the default: `admin`
//! may call everything, `user` everything but DeleteUser).
//!
//! No token, or a bad one: UNAUTHENTICATED. A good token without a needed role:
//! PERMISSION_DENIED. Health checks stay open; reflection and the monitor stream only when
//! `--auth-protect` leaves them out. With no authentication configured the backend stays open,
//! as before, and says so at start-up.

use http::Request;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::Status;

/// The authentication flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AuthArgs {
    /// Bearer tokens, one a line: `TOKEN ROLE[,ROLE…] [SUBJECT]` (`#` starts a comment).
    #[arg(long, env = "SWITCHYARD_AUTH_TOKENS")]
    pub auth_tokens: Option<PathBuf>,
    /// Accept JWTs signed with this HS256 secret (the file's bytes, a trailing newline dropped).
    #[arg(long, env = "SWITCHYARD_JWT_HS256_SECRET_FILE")]
    pub jwt_hs256_secret_file: Option<PathBuf>,
    /// Accept JWTs signed (RS256 or ES256) with this public key: a PEM file or a JWKS file.
    #[arg(long, env = "SWITCHYARD_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,
    /// The `iss` a JWT must carry.
    #[arg(long, env = "SWITCHYARD_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// The `aud` a JWT must carry.
    #[arg(long, env = "SWITCHYARD_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Roles per method (TOML: `"pkg.Service.Method" = ["role", …]`, `*` globs), replacing the
    /// default policy.
    #[arg(long, env = "SWITCHYARD_AUTH_POLICY")]
    pub auth_policy: Option<PathBuf>,
    /// Also require a token for these, comma-separated: `reflection`, `monitor`.
    #[arg(long, env = "SWITCHYARD_AUTH_PROTECT", value_delimiter = ',')]
    pub auth_protect: Vec<String>,
}

impl AuthArgs {
    /// Whether any authentication is configured.
    pub fn enabled(&self) -> bool {
        self.auth_tokens.is_some() || self.jwt_hs256_secret_file.is_some() || self.jwt_public_key.is_some()
    }
}

/// Who a caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub roles: Vec<String>,
}

/// Why the authentication settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

fn file_err(path: &Path, message: impl std::fmt::Display) -> AuthError {
    AuthError::File { path: path.to_owned(), message: message.to_string() }
}

/// How JWTs are checked.
struct Jwt {
    keys: JwtKeys,
    validation: Validation,
}

enum JwtKeys {
    Hs256(DecodingKey),
    /// One public key, for RS256 or ES256 (as the token's header says): the PEM read both ways,
    /// since reading a key as one kind does not always fail for the other.
    Public {
        rsa: Option<DecodingKey>,
        ec: Option<DecodingKey>,
    },
    /// A JWKS, chosen by the token's `kid`.
    Set(jsonwebtoken::jwk::JwkSet),
}

/// The roles each method needs: rules in order, the first that matches wins.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<(globset::GlobMatcher, Vec<String>)>,
}

impl Policy {
    /// `admin` may call every method, `user` every method but DeleteUser.
    pub fn default_policy() -> Self {
        Policy::from_pairs(&[("user.v1.UserService.DeleteUser", &["admin"][..]), ("*", &["admin", "user"][..])])
    }

    fn from_pairs(pairs: &[(&str, &[&str])]) -> Self {
        let rules = pairs
            .iter()
            .map(|(glob, roles)| {
                let m = globset::Glob::new(glob).expect("valid glob").compile_matcher();
                (m, roles.iter().map(|r| (*r).to_owned()).collect())
            })
            .collect();
        Policy { rules }
    }

    fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
        // A table keeps the file's order, so the first matching rule is the one written first.
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| file_err(path, e.message()))?;
        let mut rules = Vec::new();
        for (glob, roles) in table {
            let m = globset::Glob::new(&glob).map_err(|e| file_err(path, format!("{glob:?}: {e}")))?.compile_matcher();
            let roles: Vec<String> = roles
                .as_array()
                .ok_or_else(|| file_err(path, format!("{glob:?}: expected a list of roles")))?
                .iter()
                .map(|r| {
                    r.as_str().map(str::to_owned).ok_or_else(|| file_err(path, format!("{glob:?}: roles are strings")))
                })
                .collect::<Result<_, _>>()?;
            rules.push((m, roles));
        }
        Ok(Policy { rules })
    }

    /// The roles that may call `method` (`pkg.Service.Method`); none when no rule matches.
    pub fn roles_for(&self, method: &str) -> &[String] {
        self.rules.iter().find(|(m, _)| m.is_match(method)).map_or(&[], |(_, r)| r.as_slice())
    }
}

/// Everything the layer checks with.
pub struct Authenticator {
    tokens: HashMap<String, Principal>,
    jwt: Option<Jwt>,
    policy: Policy,
    protect_reflection: bool,
    protect_monitor: bool,
}

/// The claims read from a JWT.
#[derive(serde::Deserialize)]
struct Claims {
    sub: Option<String>,
    roles: Option<Vec<String>>,
    scope: Option<String>,
}

impl Authenticator {
    /// Loads the configured files; `None` when no authentication is configured.
    pub fn load(args: &AuthArgs) -> Result<Option<Self>, AuthError> {
        if !args.enabled() {
            return Ok(None);
        }
        let mut tokens = HashMap::new();
        if let Some(path) = &args.auth_tokens {
            let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or("").trim();
                if line.is_empty() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let (Some(token), Some(roles)) = (parts.next(), parts.next()) else {
                    return Err(file_err(path, format!("line {}: expected TOKEN ROLE[,ROLE…] [SUBJECT]", n + 1)));
                };
                let subject = parts.next().unwrap_or("token").to_owned();
                let roles = roles.split(',').filter(|r| !r.is_empty()).map(str::to_owned).collect();
                tokens.insert(token.to_owned(), Principal { subject, roles });
            }
        }
        let jwt = match (&args.jwt_hs256_secret_file, &args.jwt_public_key) {
            (Some(_), Some(_)) => {
                return Err(file_err(
                    Path::new("--jwt-public-key"),
                    "give --jwt-hs256-secret-file or --jwt-public-key, not both",
                ));
            }
            (Some(path), None) => {
                let secret = std::fs::read(path).map_err(|e| file_err(path, e))?;
                let secret = secret.strip_suffix(b"\n").unwrap_or(&secret).to_vec();
                Some((JwtKeys::Hs256(DecodingKey::from_secret(&secret)), vec![Algorithm::HS256]))
            }
            (None, Some(path)) => {
                let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
                let keys = if bytes.trim_ascii_start().starts_with(b"{") {
                    JwtKeys::Set(
                        serde_json::from_slice(&bytes).map_err(|e| file_err(path, format!("not a JWKS: {e}")))?,
                    )
                } else {
                    let rsa = DecodingKey::from_rsa_pem(&bytes).ok();
                    let ec = DecodingKey::from_ec_pem(&bytes).ok();
                    if rsa.is_none() && ec.is_none() {
                        return Err(file_err(path, "not an RSA or EC public key in PEM, nor a JWKS"));
                    }
                    JwtKeys::Public { rsa, ec }
                };
                Some((keys, vec![Algorithm::RS256, Algorithm::ES256]))
            }
            (None, None) => None,
        };
        let jwt = jwt.map(|(keys, algorithms)| {
            let mut validation = Validation::new(algorithms[0]);
            validation.algorithms = algorithms;
            validation.validate_nbf = true;
            validation.leeway = 5;
            validation.set_required_spec_claims(&["exp"]);
            match &args.jwt_issuer {
                Some(iss) => validation.set_issuer(&[iss]),
                None => validation.iss = None,
            }
            match &args.jwt_audience {
                Some(aud) => validation.set_audience(&[aud]),
                None => validation.validate_aud = false,
            }
            Jwt { keys, validation }
        });
        let policy = match &args.auth_policy {
            Some(path) => Policy::load(path)?,
            None => Policy::default_policy(),
        };
        let protect = |what: &str| args.auth_protect.iter().any(|p| p.trim() == what);
        Ok(Some(Authenticator {
            tokens,
            jwt,
            policy,
            protect_reflection: protect("reflection"),
            protect_monitor: protect("monitor"),
        }))
    }

    /// Who presents `token`.
    fn principal(&self, token: &str) -> Result<Principal, Status> {
        if let Some(p) = self.tokens.get(token) {
            return Ok(p.clone());
        }
        let Some(jwt) = &self.jwt else {
            return Err(Status::unauthenticated("unknown bearer token"));
        };
        let bad = |e: jsonwebtoken::errors::Error| Status::unauthenticated(format!("invalid token: {e}"));
        let data = match &jwt.keys {
            JwtKeys::Hs256(key) => jsonwebtoken::decode::<Claims>(token, key, &jwt.validation),
            JwtKeys::Public { rsa, ec } => {
                let header = jsonwebtoken::decode_header(token).map_err(bad)?;
                let key = match header.alg {
                    Algorithm::RS256 => rsa.as_ref(),
                    Algorithm::ES256 => ec.as_ref(),
                    _ => None,
                }
                .ok_or_else(|| {
                    Status::unauthenticated(format!("invalid token: {:?} does not fit the configured key", header.alg))
                })?;
                // The check may allow only algorithms of the key's own family.
                let mut validation = jwt.validation.clone();
                validation.algorithms = vec![header.alg];
                jsonwebtoken::decode::<Claims>(token, key, &validation)
            }
            JwtKeys::Set(set) => {
                let header = jsonwebtoken::decode_header(token).map_err(bad)?;
                if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
                    return Err(Status::unauthenticated(format!(
                        "invalid token: {:?} is not RS256 or ES256",
                        header.alg
                    )));
                }
                let jwk = match header.kid.as_deref() {
                    Some(kid) => set.find(kid),
                    None if set.keys.len() == 1 => set.keys.first(),
                    None => None,
                }
                .ok_or_else(|| Status::unauthenticated("invalid token: no key of the key set matches its kid"))?;
                let key = DecodingKey::from_jwk(jwk).map_err(bad)?;
                let mut validation = jwt.validation.clone();
                validation.algorithms = vec![header.alg];
                jsonwebtoken::decode::<Claims>(token, &key, &validation)
            }
        }
        .map_err(bad)?;
        let c = data.claims;
        let roles = match (c.roles, c.scope) {
            (Some(r), _) => r,
            (None, Some(scope)) => scope.split_whitespace().map(str::to_owned).collect(),
            (None, None) => Vec::new(),
        };
        Ok(Principal { subject: c.sub.unwrap_or_default(), roles })
    }

    /// Checks one call; `Ok(None)` for a call that needs no token.
    pub fn check(&self, path: &str, headers: &http::HeaderMap) -> Result<Option<Principal>, Status> {
        let method = path.trim_start_matches('/').replacen('/', ".", 1);
        let open = method.starts_with("grpc.health.")
            || (!self.protect_reflection && method.starts_with("grpc.reflection."))
            || (!self.protect_monitor && method == "chat.v1.ChatService.Monitor");
        if open {
            return Ok(None);
        }
        let token = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Status::unauthenticated("missing bearer token"))?;
        let who = self.principal(token)?;
        let needed = self.policy.roles_for(&method);
        if !who.roles.iter().any(|r| needed.contains(r)) {
            return Err(Status::permission_denied(format!("{method} needs one of the roles {needed:?}")));
        }
        Ok(Some(who))
    }
}

/// The tower layer that checks every call.
#[derive(Clone)]
pub struct AuthLayer(pub Arc<Authenticator>);

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth { inner, auth: self.0.clone() }
    }
}

/// [`AuthLayer`]'s service.
#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

impl<S, B> tower::Service<Request<B>> for Auth<S>
where
    S: tower::Service<Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::Either<S::Future, std::future::Ready<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        match self.auth.check(req.uri().path(), req.headers()) {
            Ok(who) => {
                if let Some(who) = who {
                    req.extensions_mut().insert(who);
                }
                futures::future::Either::Left(self.inner.call(req))
            }
            Err(status) => futures::future::Either::Right(std::future::ready(Ok(status.into_http()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    fn headers(token: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        h
    }

    fn now() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn tokens_roles_and_the_default_policy() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::write(&tokens, "# who may call\nroot-token admin alice\nuser-token user bob\n").unwrap();
        let args = AuthArgs { auth_tokens: Some(tokens), ..Default::default() };
        let auth = Authenticator::load(&args).unwrap().unwrap();
        let get = "/user.v1.UserService/GetUser";
        let delete = "/user.v1.UserService/DeleteUser";
        assert_eq!(auth.check(get, &headers("user-token")).unwrap().unwrap().subject, "bob");
        assert_eq!(auth.check(delete, &headers("user-token")).unwrap_err().code(), tonic::Code::PermissionDenied);
        assert!(auth.check(delete, &headers("root-token")).is_ok());
        assert_eq!(auth.check(get, &http::HeaderMap::new()).unwrap_err().code(), tonic::Code::Unauthenticated);
        assert_eq!(auth.check(get, &headers("nope")).unwrap_err().code(), tonic::Code::Unauthenticated);
        // Health, reflection and the monitor stay open unless protected.
        assert!(auth.check("/grpc.health.v1.Health/Check", &http::HeaderMap::new()).unwrap().is_none());
        assert!(
            auth.check("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", &http::HeaderMap::new()).is_ok()
        );
        let args = AuthArgs { auth_protect: vec!["reflection".into()], ..args };
        let auth = Authenticator::load(&args).unwrap().unwrap();
        assert!(
            auth.check("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", &http::HeaderMap::new()).is_err()
        );
        assert!(auth.check("/chat.v1.ChatService/Monitor", &http::HeaderMap::new()).is_ok());
    }

    #[test]
    fn jwts_with_expiry_issuer_audience_and_scopes() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let args = AuthArgs {
            jwt_hs256_secret_file: Some(secret),
            jwt_issuer: Some("issuer".into()),
            jwt_audience: Some("switchyard".into()),
            ..Default::default()
        };
        let auth = Authenticator::load(&args).unwrap().unwrap();
        let sign = |claims: serde_json::Value| {
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"s3cret")).unwrap()
        };
        let good = sign(
            serde_json::json!({"sub": "ann", "scope": "read user", "iss": "issuer", "aud": "switchyard", "exp": now() + 60}),
        );
        let who = auth.check("/user.v1.UserService/GetUser", &headers(&good)).unwrap().unwrap();
        assert_eq!((who.subject.as_str(), who.roles.as_slice()), ("ann", &["read".to_owned(), "user".to_owned()][..]));
        for bad in [
            serde_json::json!({"roles": ["admin"], "iss": "issuer", "aud": "switchyard", "exp": now() - 60}),
            serde_json::json!({"roles": ["admin"], "iss": "other", "aud": "switchyard", "exp": now() + 60}),
            serde_json::json!({"roles": ["admin"], "iss": "issuer", "aud": "elsewhere", "exp": now() + 60}),
            serde_json::json!({"roles": ["admin"], "iss": "issuer", "aud": "switchyard", "exp": now() + 600, "nbf": now() + 300}),
        ] {
            let e = auth.check("/user.v1.UserService/GetUser", &headers(&sign(bad.clone()))).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated, "{bad}");
        }
        let forged = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"roles": ["admin"], "iss": "issuer", "aud": "switchyard", "exp": now() + 60}),
            &EncodingKey::from_secret(b"guess"),
        )
        .unwrap();
        assert!(auth.check("/user.v1.UserService/GetUser", &headers(&forged)).is_err());
    }

    #[test]
    fn a_policy_file_replaces_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.toml");
        std::fs::write(&policy, "\"user.v1.UserService.Get*\" = [\"reader\"]\n\"*\" = [\"admin\"]\n").unwrap();
        let p = Policy::load(&policy).unwrap();
        assert_eq!(p.roles_for("user.v1.UserService.GetUser"), ["reader"]);
        assert_eq!(p.roles_for("order.v1.OrderService.GetOrder"), ["admin"]);
    }
}
