//! Which backend serves which service: `--backend [SERVICE_GLOB=]URL`, repeatable. Without a
//! key a URL is the default; with one (`user.v1.UserService=…`, `order.v1.*=…`) it serves the
//! services the glob matches, the most specific key winning. A key given several times makes a
//! set that calls are spread over.

use crate::upstream::{Upstream, UpstreamError, UpstreamOptions};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One `--backend` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSpec {
    /// The service glob, or `None` for the default.
    pub key: Option<String>,
    /// The backend's URL.
    pub url: String,
}

impl FromStr for BackendSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s.split_once('=') {
            // `=` before `://`: a key. (A URL may hold `=` in its query, never before `://`.)
            Some((key, url)) if !key.contains("://") => {
                let key = key.trim();
                if key.is_empty() {
                    return Err(format!("{s:?}: empty service pattern before '='"));
                }
                globset::Glob::new(key).map_err(|e| format!("{s:?}: bad service pattern: {e}"))?;
                Ok(BackendSpec { key: Some(key.to_owned()), url: url.trim().to_owned() })
            }
            _ if s.is_empty() => Err("empty backend".into()),
            _ => Ok(BackendSpec { key: None, url: s.to_owned() }),
        }
    }
}

/// The backends of one key: calls take turns.
#[derive(Clone)]
pub struct UpstreamSet {
    members: Arc<[Upstream]>,
    next: Arc<AtomicUsize>,
}

impl UpstreamSet {
    fn new(members: Vec<Upstream>) -> Self {
        UpstreamSet { members: members.into(), next: Arc::new(AtomicUsize::new(0)) }
    }

    /// The backend for the next call: the members take turns, skipping those the health
    /// checks found not serving (while any other is left).
    pub fn pick(&self) -> &Upstream {
        let n = self.members.len();
        if n == 1 {
            return &self.members[0];
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| &self.members[(start + k) % n])
            .find(|u| u.health() != crate::upstream::NOT_SERVING)
            .unwrap_or(&self.members[start % n])
    }

    /// Whether at least one member is known to be serving.
    pub fn ready(&self) -> bool {
        self.members.iter().any(|u| u.health() == crate::upstream::SERVING)
    }

    /// Every backend of the set.
    pub fn members(&self) -> &[Upstream] {
        &self.members
    }
}

/// All configured backends, by service.
pub struct Upstreams {
    default: Option<UpstreamSet>,
    /// Keyed sets, most specific key first.
    keyed: Vec<(globset::GlobMatcher, UpstreamSet)>,
    /// Each distinct backend once.
    all: Vec<Upstream>,
}

/// How specific a key is: an exact name beats any glob; among globs, the longer literal start.
fn specificity(key: &str) -> usize {
    match key.find(['*', '?', '[', '{']) {
        None => usize::MAX,
        Some(i) => i,
    }
}

impl Upstreams {
    /// Connects (lazily) to every backend of `specs`.
    pub fn new(specs: &[BackendSpec], options: &UpstreamOptions) -> Result<Self, UpstreamError> {
        let mut all: Vec<Upstream> = Vec::new();
        let mut upstream = |url: &str| -> Result<Upstream, UpstreamError> {
            let u = Upstream::new(url, options.clone())?;
            if let Some(existing) = all.iter().find(|e| e.name() == u.name()) {
                return Ok(existing.clone());
            }
            all.push(u.clone());
            Ok(u)
        };
        let mut default = Vec::new();
        let mut keyed: Vec<(String, Vec<Upstream>)> = Vec::new();
        for spec in specs {
            let u = upstream(&spec.url)?;
            match &spec.key {
                None => default.push(u),
                Some(k) => match keyed.iter_mut().find(|(key, _)| key == k) {
                    Some((_, members)) => members.push(u),
                    None => keyed.push((k.clone(), vec![u])),
                },
            }
        }
        // Stable: among equally specific keys, the first given wins.
        keyed.sort_by_key(|(k, _)| std::cmp::Reverse(specificity(k)));
        let keyed = keyed
            .into_iter()
            .map(|(k, members)| {
                let glob = globset::Glob::new(&k).expect("checked when parsed").compile_matcher();
                (glob, UpstreamSet::new(members))
            })
            .collect();
        let default = (!default.is_empty()).then(|| UpstreamSet::new(default));
        Ok(Upstreams { default, keyed, all })
    }

    /// The backends of a service (`package.Service`), if any is configured for it.
    pub fn for_service(&self, service: &str) -> Option<UpstreamSet> {
        self.keyed
            .iter()
            .find(|(glob, _)| glob.is_match(service))
            .map(|(_, set)| set.clone())
            .or_else(|| self.default.clone())
    }

    /// Every distinct backend.
    pub fn all(&self) -> &[Upstream] {
        &self.all
    }

    /// Checks every backend's health now and then every `interval`, until the returned task is
    /// dropped (aborted): an unhealthy backend leaves its sets, and comes back when it recovers.
    pub fn check_health(self: &std::sync::Arc<Self>, interval: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let ups = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                futures::future::join_all(ups.all.iter().map(|u| u.check_health())).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> BackendSpec {
        s.parse().unwrap()
    }

    #[test]
    fn parses_keys_and_urls() {
        assert_eq!(spec("http://a:1"), BackendSpec { key: None, url: "http://a:1".into() });
        assert_eq!(
            spec("user.v1.*=http://b:2"),
            BackendSpec { key: Some("user.v1.*".into()), url: "http://b:2".into() }
        );
        assert_eq!(spec("http://c:3/x?y=z").key, None);
        assert!("=http://a".parse::<BackendSpec>().is_err());
        assert!("a[=http://a".parse::<BackendSpec>().is_err());
    }

    #[test]
    fn the_most_specific_key_wins() {
        let specs: Vec<BackendSpec> =
            ["http://default:1", "*.v1.*=http://v1:1", "user.v1.*=http://users:1", "user.v1.Admin=http://admin:1"]
                .iter()
                .map(|s| spec(s))
                .collect();
        let ups = Upstreams::new(&specs, &UpstreamOptions::default()).unwrap();
        let name = |s: &str| ups.for_service(s).unwrap().pick().name().to_owned();
        assert_eq!(name("user.v1.Admin"), "http://admin:1");
        assert_eq!(name("user.v1.UserService"), "http://users:1");
        assert_eq!(name("order.v1.OrderService"), "http://v1:1");
        assert_eq!(name("other.Thing"), "http://default:1");
        assert_eq!(ups.all().len(), 4);
        let keyed_only = Upstreams::new(&[spec("a.*=http://a:1")], &UpstreamOptions::default()).unwrap();
        assert!(keyed_only.for_service("b.B").is_none());
    }

    #[test]
    fn a_repeated_key_is_a_set_taking_turns() {
        let specs = [spec("http://a:1"), spec("http://b:1")];
        let ups = Upstreams::new(&specs, &UpstreamOptions::default()).unwrap();
        let set = ups.for_service("x.X").unwrap();
        let first = set.pick().name().to_owned();
        let second = set.pick().name().to_owned();
        assert_ne!(first, second);
    }
}
