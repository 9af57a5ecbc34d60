//! The migration plan (`--migration FILE`, TOML): who answers each route — the legacy API, the
//! legacy API with gRPC compared in the background (shadow), a sticky share of clients on gRPC
//! (canary), or gRPC alone. Checked when loaded; an error names the line.
//!
//! ```toml
//! [defaults]
//! sticky = "header:authorization"      # or "cookie:NAME"; clients without the key go to legacy
//! [[route]]
//! match = "GET /api/v1/users/{user_id}" # or: rpc = "user.v1.UserService.GetUser"
//! mode = "shadow"                       # legacy | shadow | canary | grpc
//! percent = 10                          # canary only
//! shadow_unsafe = false                 # shadow POST/PUT/PATCH/DELETE too (they would write twice)
//! ignore = ["$.createdAt"]              # JSONPath, after renaming
//! rename = { created_at = "createdAt" } # legacy name = gRPC JSON name
//! ```

use gateway::template::{PathTemplate, RequestPath};
use http::{HeaderMap, HeaderName, Method};
use serde::Deserialize;
use serde_json_path::JsonPath;
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

/// Who answers a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The legacy API, always.
    Legacy,
    /// The legacy API answers; gRPC is called too, in the background, and the answers compared.
    Shadow,
    /// This percentage of clients (by sticky key) get gRPC, the rest the legacy API.
    Canary(u8),
    /// gRPC alone.
    Grpc,
}

impl Mode {
    /// The mode's name in the plan.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Legacy => "legacy",
            Mode::Shadow => "shadow",
            Mode::Canary(_) => "canary",
            Mode::Grpc => "grpc",
        }
    }
}

/// What identifies a client, so a canary keeps each client on one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sticky {
    Header(HeaderName),
    Cookie(String),
}

impl Sticky {
    /// The client's key in `headers`, if it has one.
    pub fn key<'a>(&self, headers: &'a HeaderMap) -> Option<&'a [u8]> {
        match self {
            Sticky::Header(name) => headers.get(name).map(|v| v.as_bytes()).filter(|v| !v.is_empty()),
            Sticky::Cookie(name) => headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_bytes())
                .filter(|v| !v.is_empty()),
        }
    }
}

/// How requests of one route are matched.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// An HTTP method and path template.
    Template { method: Method, template: PathTemplate },
    /// A gRPC method, `package.Service.Method`: every binding of it.
    Rpc(String),
}

/// One route of the plan.
#[derive(Debug, Clone)]
pub struct RoutePlan {
    /// How the route is named in the diff log and the counters: the `match` or `rpc` text.
    pub label: String,
    pub matcher: Matcher,
    pub mode: Mode,
    /// Shadow unsafe methods too.
    pub shadow_unsafe: bool,
    /// Paths left out of comparisons (after renaming).
    pub ignore: Vec<(String, JsonPath)>,
    /// Legacy field names and the gRPC JSON names they stand for.
    pub rename: BTreeMap<String, String>,
}

impl RoutePlan {
    /// Whether a request (with the gRPC method its route calls, if any) belongs to this route.
    pub fn matches(&self, method: &Method, path: &str, rpc: Option<&str>) -> bool {
        match &self.matcher {
            Matcher::Rpc(name) => rpc == Some(name.as_str()),
            Matcher::Template { method: m, template } => {
                (m == method || (*m == Method::GET && *method == Method::HEAD))
                    && RequestPath::new(path).is_some_and(|p| matches!(template.matches(&p), Ok(Some(_))))
            }
        }
    }
}

/// The whole plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub sticky: Sticky,
    pub routes: Vec<RoutePlan>,
}

impl Default for Plan {
    fn default() -> Self {
        Plan { sticky: Sticky::Header(http::header::AUTHORIZATION), routes: Vec::new() }
    }
}

impl Plan {
    /// The first route of the plan a request belongs to.
    pub fn find(&self, method: &Method, path: &str, rpc: Option<&str>) -> Option<&RoutePlan> {
        self.routes.iter().find(|r| r.matches(method, path, rpc))
    }

    /// Reads and checks a plan file.
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|e| PlanError {
            file: path.display().to_string(),
            line: None,
            message: e.to_string(),
        })?;
        Plan::parse(&text).map_err(|(line, message)| PlanError { file: path.display().to_string(), line, message })
    }

    /// Parses plan text; an error carries the line it is about.
    pub fn parse(text: &str) -> Result<Plan, (Option<usize>, String)> {
        let file: File =
            toml::from_str(text).map_err(|e| (e.span().map(|s| line_of(text, s.start)), e.message().to_owned()))?;
        let sticky = match &file.defaults.sticky {
            None => Sticky::Header(http::header::AUTHORIZATION),
            Some(s) => {
                let at = Some(line_of(text, s.span().start));
                match s.get_ref().split_once(':') {
                    Some(("header", name)) => Sticky::Header(
                        HeaderName::from_bytes(name.trim().as_bytes())
                            .map_err(|_| (at, format!("sticky: {name:?} is not a header name")))?,
                    ),
                    Some(("cookie", name)) if !name.trim().is_empty() => Sticky::Cookie(name.trim().to_owned()),
                    _ => {
                        return Err((
                            at,
                            format!("sticky: {:?} is neither \"header:NAME\" nor \"cookie:NAME\"", s.get_ref()),
                        ));
                    }
                }
            }
        };
        let mut routes = Vec::new();
        for route in file.route {
            let at = Some(line_of(text, route.span().start));
            let r = route.into_inner();
            let err = |message: String| (at, message);
            let (label, matcher) = match (r.r#match, r.rpc) {
                (Some(m), None) => {
                    let (method, template) = m
                        .trim()
                        .split_once(' ')
                        .ok_or_else(|| err(format!("match {m:?}: expected \"METHOD /path/template\"")))?;
                    let method = Method::from_bytes(method.as_bytes())
                        .map_err(|_| err(format!("match {m:?}: {method:?} is not an HTTP method")))?;
                    let template =
                        PathTemplate::parse(template.trim()).map_err(|e| err(format!("match {m:?}: {e}")))?;
                    (m.trim().to_owned(), Matcher::Template { method, template })
                }
                (None, Some(rpc)) => {
                    if rpc.split('.').count() < 2 || rpc.contains('/') {
                        return Err(err(format!("rpc {rpc:?}: expected package.Service.Method")));
                    }
                    (rpc.clone(), Matcher::Rpc(rpc))
                }
                (Some(_), Some(_)) => return Err(err("a route has either match or rpc, not both".into())),
                (None, None) => {
                    return Err(err("a route needs match = \"METHOD /path\" or rpc = \"pkg.Service.Method\"".into()));
                }
            };
            let mode = match (r.mode.as_str(), r.percent) {
                ("legacy", None) => Mode::Legacy,
                ("shadow", None) => Mode::Shadow,
                ("grpc", None) => Mode::Grpc,
                ("canary", Some(p)) if p <= 100 => Mode::Canary(p as u8),
                ("canary", Some(p)) => return Err(err(format!("percent {p} is not between 0 and 100"))),
                ("canary", None) => return Err(err("a canary route needs percent = 0..100".into())),
                ("legacy" | "shadow" | "grpc", Some(_)) => {
                    return Err(err("percent applies to canary routes only".into()));
                }
                (other, _) => return Err(err(format!("mode {other:?}: use legacy, shadow, canary or grpc"))),
            };
            let mut ignore = Vec::new();
            for path in r.ignore {
                let parsed = JsonPath::parse(&path).map_err(|e| err(format!("ignore {path:?}: {e}")))?;
                ignore.push((path, parsed));
            }
            routes.push(RoutePlan { label, matcher, mode, shadow_unsafe: r.shadow_unsafe, ignore, rename: r.rename });
        }
        Ok(Plan { sticky, routes })
    }
}

/// Why a plan cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct PlanError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    route: Vec<Spanned<RouteFile>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Defaults {
    sticky: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    r#match: Option<String>,
    rpc: Option<String>,
    mode: String,
    percent: Option<u32>,
    #[serde(default)]
    shadow_unsafe: bool,
    #[serde(default)]
    ignore: Vec<String>,
    #[serde(default)]
    rename: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"
[defaults]
sticky = "cookie:session"

[[route]]
match = "GET /api/v1/users/{user_id}"
mode = "shadow"
ignore = ["$.createdAt"]
rename = { created_at = "createdAt" }

[[route]]
rpc = "user.v1.UserService.ListUsers"
mode = "canary"
percent = 25

[[route]]
match = "GET /api/v1/users/search"
mode = "legacy"
"#;

    #[test]
    fn reads_every_mode_and_matches_requests() {
        let plan = Plan::parse(PLAN).unwrap();
        assert_eq!(plan.sticky, Sticky::Cookie("session".into()));
        let get = plan.find(&Method::GET, "/api/v1/users/u1", Some("user.v1.UserService.GetUser")).unwrap();
        assert_eq!((get.mode, get.rename["created_at"].as_str()), (Mode::Shadow, "createdAt"));
        let list = plan.find(&Method::GET, "/api/v1/users", Some("user.v1.UserService.ListUsers")).unwrap();
        assert_eq!(list.mode, Mode::Canary(25));
        // Earlier routes win: "search" is a user id to the first route.
        assert_eq!(plan.find(&Method::GET, "/api/v1/users/search", None).unwrap().mode, Mode::Shadow);
        assert!(plan.find(&Method::DELETE, "/api/v1/users/u1", None).is_none());
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, "a=1; session=abc".parse().unwrap());
        assert_eq!(plan.sticky.key(&headers), Some(&b"abc"[..]));
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, what) in [
            ("[[route]]\nmatch = \"GET /x\"\nmode = \"sideways\"\n", 1, "mode"),
            ("\n\n[[route]]\nmode = \"canary\"\nmatch = \"GET /x\"\n", 3, "percent"),
            ("[[route]]\nmatch = \"GET x\"\nmode = \"grpc\"\n", 1, "match"),
            ("[[route]]\nrpc = \"a.B.C\"\nmode = \"grpc\"\nignore = [\"$[\"]\n", 1, "ignore"),
            ("[[route]]\nrpc = \"a.B.C\"\nmode = \"grpc\"\ncolour = 1\n", 4, "colour"),
            ("[defaults]\nsticky = \"ip\"\n", 2, "sticky"),
        ] {
            let (l, message) = Plan::parse(text).unwrap_err();
            assert_eq!(l, Some(line), "{text:?}: {message}");
            assert!(message.contains(what), "{message}");
        }
    }
}
