//! Which routes a request could match, without trying every route of the API.
//!
//! Trying each template in turn costs a match per route: ~200 instructions each, so an API of
//! a few hundred routes would spend more on finding the route than on the rest of the request.
//! The index narrows the search by what is cheap to read off a request path: its method, its
//! number of segments (a template without `**` matches exactly as many as it has), and, among
//! the templates of one count, the literal at the position that tells them apart best
//! (`users` or `orders` in `/api/v1/{users|orders}/{id}`). Candidates come out in the table's
//! order, so the first match is the one a full scan would find.

use crate::template::{PathTemplate, RequestPath, Segment};
use http::Method;
use std::collections::HashMap;

/// Literal segments are short and the API's own: a fast hash (foldhash) is enough, where the
/// standard one (SipHash, built to resist chosen keys) was most of a lookup.
type Literals = HashMap<String, Vec<u32>, foldhash::fast::RandomState>;

/// The routes of a table, by method, segment count and a discriminating literal.
#[derive(Default)]
pub struct RouteIndex {
    methods: Vec<(Method, ByCount)>,
}

/// One method's routes (positions in the table, ascending).
#[derive(Default)]
struct ByCount {
    /// Templates without `**`, by their number of segments.
    exact: Vec<Bucket>,
    /// Templates ending in `**`: any count from their fixed part up.
    rest: Vec<u32>,
}

/// The templates of one method and segment count.
#[derive(Default)]
struct Bucket {
    all: Vec<u32>,
    key: Option<LiteralKey>,
}

/// The templates of a bucket by their literal at `position`; `others` have a variable there.
struct LiteralKey {
    position: usize,
    by_literal: Literals,
    others: Vec<u32>,
}

impl RouteIndex {
    /// Indexes `routes` (method and template of each, in the table's order).
    pub fn new<'a>(routes: impl IntoIterator<Item = (&'a Method, &'a PathTemplate)>) -> Self {
        let mut index = RouteIndex::default();
        let mut templates: Vec<&PathTemplate> = Vec::new();
        for (i, (method, template)) in routes.into_iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 2^32 routes");
            templates.push(template);
            let by_count = match index.methods.iter().position(|(m, _)| m == method) {
                Some(p) => &mut index.methods[p].1,
                None => {
                    index.methods.push((method.clone(), ByCount::default()));
                    &mut index.methods.last_mut().expect("just pushed").1
                }
            };
            if matches!(template.segments.last(), Some(Segment::Rest)) {
                by_count.rest.push(i);
                continue;
            }
            let count = template.segments.len();
            if by_count.exact.len() <= count {
                by_count.exact.resize_with(count + 1, Bucket::default);
            }
            by_count.exact[count].all.push(i);
        }
        for (_, by_count) in &mut index.methods {
            for (count, bucket) in by_count.exact.iter_mut().enumerate() {
                bucket.key = LiteralKey::best(count, &bucket.all, &templates);
            }
        }
        index
    }

    /// The routes of `method` that could match `path`, in the table's order.
    pub fn candidates<'i>(&'i self, method: &Method, path: &RequestPath<'_>) -> Candidates<'i> {
        let Some((_, by_count)) = self.methods.iter().find(|(m, _)| m == method) else {
            return Candidates::default();
        };
        let bucket = by_count.exact.get(path.segment_count());
        let (a, b): (&[u32], &[u32]) = match bucket {
            None => (&[], &[]),
            Some(Bucket { key: Some(key), .. }) if !path.segment(key.position).contains('%') => {
                let hits = key.by_literal.get(path.segment(key.position)).map_or(&[][..], Vec::as_slice);
                (hits, &key.others)
            }
            Some(bucket) => (&bucket.all, &[]),
        };
        Candidates { lists: [a, b, &by_count.rest] }
    }
}

impl LiteralKey {
    /// The position (not the last, where a custom verb hides in the request's segment) whose
    /// literals leave the fewest candidates in the worst case; none when no position narrows
    /// the bucket.
    fn best(count: usize, all: &[u32], templates: &[&PathTemplate]) -> Option<LiteralKey> {
        let mut best: Option<(usize, LiteralKey)> = None;
        for position in 0..count.saturating_sub(1) {
            let mut by_literal = Literals::default();
            let mut others = Vec::new();
            for &i in all {
                match &templates[i as usize].segments[position] {
                    Segment::Literal(l) => by_literal.entry(l.clone()).or_default().push(i),
                    _ => others.push(i),
                }
            }
            let worst = by_literal.values().map(Vec::len).max().unwrap_or(0) + others.len();
            if worst < all.len() && best.as_ref().is_none_or(|(w, _)| worst < *w) {
                best = Some((worst, LiteralKey { position, by_literal, others }));
            }
        }
        best.map(|(_, key)| key)
    }
}

/// Up to three ascending lists of route positions, merged.
#[derive(Default)]
pub struct Candidates<'i> {
    lists: [&'i [u32]; 3],
}

impl Iterator for Candidates<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let (which, first) =
            self.lists.iter().enumerate().filter_map(|(n, l)| l.first().map(|&f| (n, f))).min_by_key(|&(_, f)| f)?;
        self.lists[which] = &self.lists[which][1..];
        Some(first as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates(texts: &[&str]) -> Vec<PathTemplate> {
        texts.iter().map(|t| PathTemplate::parse(t).unwrap()).collect()
    }

    fn candidates(index: &RouteIndex, method: &Method, path: &str) -> Vec<usize> {
        index.candidates(method, &RequestPath::new(path).unwrap()).collect()
    }

    #[test]
    fn narrows_by_method_count_and_literal_keeping_the_order() {
        let t = templates(&[
            "/api/v1/users/{id}:archive",
            "/api/v1/users/{id}",
            "/api/v1/orders/{id}",
            "/api/v1/{kind}/{id}",
            "/api/v1/users",
            "/files/{path=**}",
        ]);
        let get = Method::GET;
        let methods = [&get, &get, &get, &get, &Method::POST, &get];
        let index = RouteIndex::new(methods.into_iter().zip(&t));
        // `users` at the third position: the users templates and the variable one, then `**`.
        assert_eq!(candidates(&index, &get, "/api/v1/users/7"), vec![0, 1, 3, 5]);
        assert_eq!(candidates(&index, &get, "/api/v1/orders/7"), vec![2, 3, 5]);
        assert_eq!(candidates(&index, &get, "/api/v1/things/7"), vec![3, 5]);
        // An escaped segment where the key is read could still decode to a literal: no narrowing.
        assert_eq!(candidates(&index, &get, "/api/v1/%75sers/7"), vec![0, 1, 2, 3, 5]);
        assert_eq!(candidates(&index, &get, "/api/v1/users"), vec![5]);
        assert_eq!(candidates(&index, &Method::POST, "/api/v1/users"), vec![4]);
        assert_eq!(candidates(&index, &Method::PUT, "/api/v1/users"), Vec::<usize>::new());
    }

    #[test]
    fn a_large_api_tries_one_template_not_all() {
        let texts: Vec<String> = (0..300)
            .flat_map(|n| [format!("/api/v1/resource{n}/{{id}}"), format!("/api/v1/resource{n}/{{id}}/items")])
            .collect();
        let t = templates(&texts.iter().map(String::as_str).collect::<Vec<_>>());
        let index = RouteIndex::new(t.iter().map(|t| (&Method::GET, t)));
        assert_eq!(candidates(&index, &Method::GET, "/api/v1/resource150/7"), vec![300]);
        assert_eq!(candidates(&index, &Method::GET, "/api/v1/resource150/7/items"), vec![301]);
    }
}
