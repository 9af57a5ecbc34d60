//! The route table: finds the route for a request's method and path, or says why none fits
//! (404, or 405 with the methods that would).

use crate::error::GatewayError;
use crate::route_index::RouteIndex;
use crate::rules::Binding;
use crate::template::{Captures, RequestPath};
use crate::upstreams::UpstreamSet;
use http::Method;
use std::sync::Arc;

/// One binding, compiled: everything a request on it needs, resolved once per table.
pub struct Route {
    /// The binding: template, body mapping, descriptors, gRPC path.
    pub binding: Binding,
    /// The backends of the binding's service.
    pub upstream: UpstreamSet,
    /// Its metric handles, made as answers come.
    pub metrics: crate::observe::RouteMetrics,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} -> {}", self.http_method, self.template, self.full_method())
    }
}

impl std::ops::Deref for Route {
    type Target = Binding;

    fn deref(&self) -> &Binding {
        &self.binding
    }
}

/// All routes, matched in order of specificity.
#[derive(Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
    index: RouteIndex,
}

impl RouteTable {
    /// Builds the table; the most specific templates are tried first, so a literal or a custom
    /// verb wins over a variable that would also match.
    pub fn new(routes: impl IntoIterator<Item = Route>) -> Self {
        let mut routes: Vec<Arc<Route>> = routes.into_iter().map(Arc::new).collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.template.specificity()));
        let index = RouteIndex::new(routes.iter().map(|r| (&r.http_method, &r.template)));
        RouteTable { routes, index }
    }

    /// Every route.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.iter()
    }

    /// Every binding.
    pub fn bindings(&self) -> impl Iterator<Item = &Binding> {
        self.routes.iter().map(|r| &r.binding)
    }

    /// The route and decoded path variables for a request. HEAD falls back to GET routes.
    ///
    /// Only the request's own method's routes are tried first; the others are looked at only
    /// when none of those match, to tell 405 (and its `Allow`) from 404.
    pub fn find(&self, method: &Method, path: &str) -> Result<(Arc<Route>, Captures), GatewayError> {
        let no_route = || GatewayError::NoRoute { method: method.clone(), path: path.to_owned() };
        let request = RequestPath::new(path).ok_or_else(no_route)?;
        let mut bad_path = None;
        let mut first_match = |method: &Method| {
            for i in self.index.candidates(method, &request) {
                match self.routes[i].template.matches(&request) {
                    Ok(Some(captures)) => return Some((self.routes[i].clone(), captures)),
                    Ok(None) => {}
                    Err(e) => {
                        bad_path.get_or_insert(e);
                    }
                }
            }
            None
        };
        if let Some(found) = first_match(method) {
            return Ok(found);
        }
        if *method == Method::HEAD
            && let Some(found) = first_match(&Method::GET)
        {
            return Ok(found);
        }
        if let Some(e) = bad_path {
            return Err(GatewayError::BadRequest(e.to_string()));
        }
        let mut allow: Vec<Method> = Vec::new();
        for route in &self.routes {
            if !allow.contains(&route.http_method) && !matches!(route.template.matches(&request), Ok(None)) {
                allow.push(route.http_method.clone());
            }
        }
        if !allow.is_empty() {
            allow.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            return Err(GatewayError::MethodNotAllowed { method: method.clone(), path: path.to_owned(), allow });
        }
        Err(no_route())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::load_bindings;
    use prost_reflect::DescriptorPool;

    fn table() -> RouteTable {
        let pool = DescriptorPool::decode(switchyard_proto::FILE_DESCRIPTOR_SET).unwrap();
        let specs = ["http://127.0.0.1:1".parse().unwrap()];
        let ups = crate::upstreams::Upstreams::new(&specs, &Default::default()).unwrap();
        let upstream = ups.for_service("any").unwrap();
        RouteTable::new(load_bindings(&pool).unwrap().into_iter().map(|binding| Route {
            binding,
            upstream: upstream.clone(),
            metrics: Default::default(),
        }))
    }

    #[test]
    fn finds_the_binding_or_says_why_not() {
        let t = table();
        let (b, c) = t.find(&Method::GET, "/api/v1/users/abc").unwrap();
        assert_eq!(b.full_method(), "user.v1.UserService.GetUser");
        assert_eq!(c[0].1, "abc");
        let (b, _) = t.find(&Method::GET, "/api/v1/users").unwrap();
        assert_eq!(b.full_method(), "user.v1.UserService.ListUsers");
        let (b, _) = t.find(&Method::HEAD, "/api/v1/users").unwrap();
        assert_eq!(b.full_method(), "user.v1.UserService.ListUsers");
        let (b, _) = t.find(&Method::POST, "/api/v1/types/scalars:echo").unwrap();
        assert_eq!(b.full_method(), "types.v1.TypesService.EchoScalars");
        match t.find(&Method::PUT, "/api/v1/users/abc") {
            Err(GatewayError::MethodNotAllowed { allow, .. }) => {
                assert_eq!(allow, vec![Method::DELETE, Method::GET, Method::PATCH]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(t.find(&Method::GET, "/nope"), Err(GatewayError::NoRoute { .. })));
        assert!(matches!(t.find(&Method::GET, "nope"), Err(GatewayError::NoRoute { .. })));
        assert!(matches!(t.find(&Method::GET, "/api/v1/users/%ZZ"), Err(GatewayError::BadRequest(_))));
    }

    /// Every route tried in order, as the table did before it had an index.
    fn scan(t: &RouteTable, method: &Method, path: &str) -> Option<(String, Captures)> {
        let request = RequestPath::new(path)?;
        let mut fallback = None;
        for route in &t.routes {
            let same = route.http_method == *method;
            if !(same || (*method == Method::HEAD && route.http_method == Method::GET)) {
                continue;
            }
            if let Ok(Some(c)) = route.template.matches(&request) {
                if same {
                    return Some((route.full_method().to_owned(), c));
                }
                fallback.get_or_insert((route.full_method().to_owned(), c));
            }
        }
        fallback
    }

    #[test]
    fn the_index_finds_what_trying_every_route_finds() {
        let t = table();
        let mut paths = vec!["/".to_owned(), "/api".to_owned(), "/api/v1/%75sers/x".to_owned()];
        for route in &t.routes {
            for fill in ["x", "%78", "a:b"] {
                let mut path = String::new();
                for s in &route.template.segments {
                    path.push('/');
                    path.push_str(match s {
                        crate::template::Segment::Literal(l) => l,
                        crate::template::Segment::Any => fill,
                        crate::template::Segment::Rest => "a/b",
                    });
                }
                if let Some(verb) = &route.template.verb {
                    paths.push(format!("{path}:{verb}"));
                }
                paths.push(format!("{path}/more"));
                paths.push(path);
            }
        }
        let methods = [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
        for path in &paths {
            for method in &methods {
                let found = t.find(method, path).ok().map(|(r, c)| (r.full_method().to_owned(), c));
                assert_eq!(found, scan(&t, method, path), "{method} {path}");
            }
        }
    }
}
