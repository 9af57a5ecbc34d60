//! google.api.http path templates: parsed once into a [`PathTemplate`] that matches request paths
//! and prints itself back.
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```
//!
//! `{var}` means `{var=*}`. `**` matches zero or more segments and may only be the last segment.
//! Variables do not nest, and a field is bound once. A single-segment variable is fully
//! percent-decoded; a multi-segment one keeps `%2F` encoded so that it cannot forge a `/`
//! (the rule of google/api/http.proto).

use percent_encoding::percent_decode_str;
use std::fmt;

/// Why a template does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template must start with '/': {0:?}")]
    NoLeadingSlash(String),
    #[error("empty segment in template {0:?}")]
    EmptySegment(String),
    #[error("'**' must be the last segment in template {0:?}")]
    DeepWildcardNotLast(String),
    #[error("nested variable in template {0:?}")]
    NestedVariable(String),
    #[error("unclosed or unopened '{{' in template {0:?}")]
    UnbalancedBrace(String),
    #[error("invalid field path {field:?} in template {template:?}")]
    BadFieldPath { template: String, field: String },
    #[error("field {field:?} is bound twice in template {template:?}")]
    DuplicateVariable { template: String, field: String },
    #[error("invalid literal {literal:?} in template {template:?}")]
    BadLiteral { template: String, literal: String },
    #[error("empty verb in template {0:?}")]
    EmptyVerb(String),
}

/// One segment pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Matches exactly this text.
    Literal(String),
    /// `*`: any one non-empty segment.
    Any,
    /// `**`: zero or more segments (last position only).
    Rest,
}

/// A variable: which segments it captures and the request field it fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The request field path, e.g. `["user", "id"]`.
    /// Shared: every match hands it out with the captured value.
    pub field_path: std::sync::Arc<[String]>,
    /// Index of its first segment in [`PathTemplate::segments`].
    pub start: usize,
    /// One past its last segment.
    pub end: usize,
}

impl Variable {
    /// The dotted field path, as written in the template.
    pub fn field(&self) -> String {
        self.field_path.join(".")
    }
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    /// The segment patterns in order.
    pub segments: Vec<Segment>,
    /// The variables, in order of appearance.
    pub variables: Vec<Variable>,
    /// The custom verb after the last `:`, if any.
    pub verb: Option<String>,
}

/// Why a request path could not be bound although its shape matched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path segment {0:?} is not valid percent-encoded UTF-8")]
    BadEncoding(String),
}

/// A split request path, ready to be matched against many templates.
#[derive(Debug, Clone)]
pub struct RequestPath<'a> {
    /// Inline up to eight: paths seldom have more, and this was an allocation per request.
    segments: smallvec::SmallVec<[&'a str; 8]>,
    /// The text after the last ':' of the last segment, if it has one.
    verb: Option<&'a str>,
    /// The last segment without its verb.
    last_without_verb: Option<&'a str>,
}

impl<'a> RequestPath<'a> {
    /// Splits a raw (still percent-encoded) request path. `None` when it does not start with '/'.
    pub fn new(path: &'a str) -> Option<Self> {
        let rest = path.strip_prefix('/')?;
        // memchr finds the slashes many bytes at a time, where `split('/')`'s searcher cost more
        // than the short segments of a path.
        let mut segments = smallvec::SmallVec::<[&str; 8]>::new();
        let mut start = 0;
        for i in memchr::memchr_iter(b'/', rest.as_bytes()) {
            segments.push(&rest[start..i]);
            start = i + 1;
        }
        segments.push(&rest[start..]);
        let last = *segments.last()?;
        let (last_without_verb, verb) = match last.rfind(':') {
            Some(i) => (Some(&last[..i]), Some(&last[i + 1..])),
            None => (None, None),
        };
        Some(RequestPath { segments, verb, last_without_verb })
    }

    /// The number of segments (at least one, possibly empty).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Segment `i`, raw (still percent-encoded, the verb left on the last).
    pub fn segment(&self, i: usize) -> &str {
        self.segments[i]
    }
}

/// The captured variables of a matched path, decoded.
pub type Captures = Vec<(std::sync::Arc<[String]>, String)>;

fn valid_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_literal(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-._~!$&'()+,;=@%".contains(c))
}

struct Parser<'a> {
    template: &'a str,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
}

impl Parser<'_> {
    fn err_string(&self) -> String {
        self.template.to_owned()
    }

    /// Parses `/`-separated segments of `text`, optionally inside a variable.
    fn segments(&mut self, text: &str, in_variable: bool) -> Result<(), TemplateError> {
        let mut rest = text;
        loop {
            let (seg, tail) = if !in_variable && rest.starts_with('{') {
                let close = rest.find('}').ok_or_else(|| TemplateError::UnbalancedBrace(self.err_string()))?;
                let inner = &rest[1..close];
                self.variable(inner)?;
                let tail = &rest[close + 1..];
                match tail.strip_prefix('/') {
                    Some(t) => (None, Some(t)),
                    None if tail.is_empty() => (None, None),
                    None => return Err(TemplateError::UnbalancedBrace(self.err_string())),
                }
            } else {
                match rest.find('/') {
                    Some(i) => (Some(&rest[..i]), Some(&rest[i + 1..])),
                    None => (Some(rest), None),
                }
            };
            if let Some(seg) = seg {
                if seg.contains('{') {
                    return Err(if in_variable {
                        TemplateError::NestedVariable(self.err_string())
                    } else {
                        TemplateError::UnbalancedBrace(self.err_string())
                    });
                }
                if seg.contains('}') {
                    return Err(TemplateError::UnbalancedBrace(self.err_string()));
                }
                let parsed = match seg {
                    "" => return Err(TemplateError::EmptySegment(self.err_string())),
                    "*" => Segment::Any,
                    "**" => Segment::Rest,
                    lit if valid_literal(lit) => Segment::Literal(lit.to_owned()),
                    lit => {
                        return Err(TemplateError::BadLiteral { template: self.err_string(), literal: lit.to_owned() });
                    }
                };
                if self.segments.last() == Some(&Segment::Rest) {
                    return Err(TemplateError::DeepWildcardNotLast(self.err_string()));
                }
                self.segments.push(parsed);
            }
            match tail {
                Some(t) => rest = t,
                None => return Ok(()),
            }
        }
    }

    fn variable(&mut self, inner: &str) -> Result<(), TemplateError> {
        if inner.contains('{') {
            return Err(TemplateError::NestedVariable(self.err_string()));
        }
        let (field, pattern) = match inner.split_once('=') {
            Some((f, p)) => (f, p),
            None => (inner, "*"),
        };
        let field_path: Vec<String> = field.split('.').map(str::to_owned).collect();
        if !field_path.iter().all(|s| valid_ident(s)) {
            return Err(TemplateError::BadFieldPath { template: self.err_string(), field: field.to_owned() });
        }
        if self.variables.iter().any(|v| *v.field_path == *field_path) {
            return Err(TemplateError::DuplicateVariable { template: self.err_string(), field: field.to_owned() });
        }
        if self.segments.last() == Some(&Segment::Rest) {
            return Err(TemplateError::DeepWildcardNotLast(self.err_string()));
        }
        let start = self.segments.len();
        if pattern.is_empty() {
            return Err(TemplateError::EmptySegment(self.err_string()));
        }
        self.segments(pattern, true)?;
        self.variables.push(Variable { field_path: field_path.into(), start, end: self.segments.len() });
        Ok(())
    }
}

impl PathTemplate {
    /// Parses a template such as `/v1/{name=shelves/*/books/*}:publish`.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let body = template.strip_prefix('/').ok_or_else(|| TemplateError::NoLeadingSlash(template.to_owned()))?;
        // The verb is after the last ':' that is outside any variable.
        let (body, verb) = match body.rfind(':') {
            Some(i) if !body[i..].contains('}') => {
                let verb = &body[i + 1..];
                if verb.is_empty() {
                    return Err(TemplateError::EmptyVerb(template.to_owned()));
                }
                if !valid_literal(verb) || verb.contains('/') {
                    return Err(TemplateError::BadLiteral { template: template.to_owned(), literal: verb.to_owned() });
                }
                (&body[..i], Some(verb.to_owned()))
            }
            _ => (body, None),
        };
        let mut p = Parser { template, segments: Vec::new(), variables: Vec::new() };
        p.segments(body, false)?;
        Ok(PathTemplate { segments: p.segments, variables: p.variables, verb })
    }

    /// How specific the template is, for choosing between several that match one path:
    /// a verb first, then more literal segments, then fewer `**`.
    pub fn specificity(&self) -> (bool, usize, usize, usize) {
        let literals = self.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count();
        let singles = self.segments.iter().filter(|s| matches!(s, Segment::Any)).count();
        let rest = self.segments.iter().any(|s| matches!(s, Segment::Rest));
        (self.verb.is_some(), literals, singles, usize::from(!rest))
    }

    /// The template without its variable names (`/users/*:archive`): two templates of the same
    /// shape match the same paths, so one method cannot have both.
    pub fn shape(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Any => out.push('*'),
                Segment::Rest => out.push_str("**"),
            }
        }
        if let Some(verb) = &self.verb {
            out.push(':');
            out.push_str(verb);
        }
        out
    }

    /// Matches a request path; `Ok(None)` when its shape does not fit, `Err` when it fits but a
    /// captured value is not valid percent-encoded UTF-8.
    pub fn matches(&self, path: &RequestPath<'_>) -> Result<Option<Captures>, PathError> {
        // Every route is tried in turn, so a path that does not fit is turned away without
        // allocating: the segments are read in place, the last one without its verb.
        let stripped = match (&self.verb, path.verb) {
            (Some(want), Some(got)) if want == got => path.last_without_verb,
            (Some(_), _) => return Ok(None),
            (None, _) => None,
        };
        let count = path.segments.len();
        let seg = |i: usize| match stripped {
            Some(last) if i + 1 == count => last,
            _ => path.segments[i],
        };
        let has_rest = matches!(self.segments.last(), Some(Segment::Rest));
        let fixed = self.segments.len() - usize::from(has_rest);
        if count < fixed || (!has_rest && count != fixed) {
            return Ok(None);
        }
        for (i, pattern) in self.segments.iter().enumerate().take(count) {
            let seg = seg(i);
            match pattern {
                Segment::Literal(lit) => {
                    if seg != lit && !(seg.contains('%') && decode(seg, false).ok().as_deref() == Some(lit.as_str())) {
                        return Ok(None);
                    }
                }
                Segment::Any => {
                    if seg.is_empty() {
                        return Ok(None);
                    }
                }
                Segment::Rest => {}
            }
        }
        if has_rest && (fixed..count).any(|i| seg(i).is_empty()) {
            return Ok(None);
        }
        let mut captures = Vec::with_capacity(self.variables.len());
        for v in &self.variables {
            let end = if v.end == self.segments.len() && has_rest { count } else { v.end };
            let value = if end - v.start == 1 && v.end - v.start == 1 && !has_rest_in(self, v) {
                decode(seg(v.start), false)?
            } else {
                (v.start..end).map(|i| decode(seg(i), true)).collect::<Result<Vec<_>, _>>()?.join("/")
            };
            captures.push((v.field_path.clone(), value));
        }
        Ok(Some(captures))
    }
}

fn has_rest_in(t: &PathTemplate, v: &Variable) -> bool {
    t.segments[v.start..v.end].contains(&Segment::Rest)
}

/// Percent-decodes one segment; with `keep_slash`, `%2F` stays encoded (multi-segment variables).
fn decode(seg: &str, keep_slash: bool) -> Result<String, PathError> {
    if !seg.contains('%') {
        // Nothing escaped (the common case: ids, names): the segment is its own value.
        return Ok(seg.to_owned());
    }
    let bad = || PathError::BadEncoding(seg.to_owned());
    // Reject malformed escapes instead of passing them through as text.
    let bytes = seg.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(bad());
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    if keep_slash && (seg.contains("%2F") || seg.contains("%2f")) {
        let parts: Vec<String> = split_keep(seg)
            .into_iter()
            .map(|p| match p {
                Part::Slash(s) => Ok(s.to_owned()),
                Part::Text(t) => percent_decode_str(t).decode_utf8().map(|c| c.into_owned()).map_err(|_| bad()),
            })
            .collect::<Result<_, _>>()?;
        return Ok(parts.concat());
    }
    percent_decode_str(seg).decode_utf8().map(|c| c.into_owned()).map_err(|_| bad())
}

enum Part<'a> {
    Slash(&'a str),
    Text(&'a str),
}

fn split_keep(seg: &str) -> Vec<Part<'_>> {
    let mut parts = Vec::new();
    let mut last = 0;
    let lower = seg.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("%2f") {
        let at = from + i;
        parts.push(Part::Text(&seg[last..at]));
        parts.push(Part::Slash(&seg[at..at + 3]));
        last = at + 3;
        from = last;
    }
    parts.push(Part::Text(&seg[last..]));
    parts
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut i = 0;
        while i < self.segments.len() {
            f.write_str("/")?;
            if let Some(v) = self.variables.iter().find(|v| v.start == i) {
                write!(f, "{{{}", v.field())?;
                let inner = &self.segments[v.start..v.end];
                if inner != [Segment::Any] {
                    f.write_str("=")?;
                    for (k, s) in inner.iter().enumerate() {
                        if k > 0 {
                            f.write_str("/")?;
                        }
                        fmt_segment(s, f)?;
                    }
                }
                f.write_str("}")?;
                i = v.end;
            } else {
                fmt_segment(&self.segments[i], f)?;
                i += 1;
            }
        }
        if let Some(verb) = &self.verb {
            write!(f, ":{verb}")?;
        }
        Ok(())
    }
}

fn fmt_segment(s: &Segment, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match s {
        Segment::Literal(l) => f.write_str(l),
        Segment::Any => f.write_str("*"),
        Segment::Rest => f.write_str("**"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(template: &str, path: &str) -> Option<Vec<(String, String)>> {
        let t = PathTemplate::parse(template).unwrap();
        let p = RequestPath::new(path).unwrap();
        t.matches(&p).unwrap().map(|c| c.into_iter().map(|(f, v)| (f.join("."), v)).collect())
    }

    #[test]
    fn parses_and_prints_back() {
        for t in [
            "/api/v1/users",
            "/api/v1/users/{user_id}",
            "/v1/{name=shelves/*/books/*}",
            "/v1/{name=shelves/*}/books",
            "/v1/files/{path=**}",
            "/v1/{user.id}/x/*",
            "/v1/**",
            "/api/v1/types/scalars:echo",
            "/v1/{name=messages/*}:cancel",
            "/v1/a/{b}/{c=x/**}:do",
        ] {
            assert_eq!(PathTemplate::parse(t).unwrap().to_string(), t, "{t}");
        }
        assert_eq!(PathTemplate::parse("/v1/{a=*}").unwrap().to_string(), "/v1/{a}");
    }

    #[test]
    fn rejects_malformed_templates() {
        for t in [
            "",
            "v1/users",
            "/v1//users",
            "/v1/users/",
            "/v1/**/x",
            "/v1/{a=**}/x",
            "/v1/{a={b}}",
            "/v1/{a",
            "/v1/a}",
            "/v1/{a}{b}",
            "/v1/{}",
            "/v1/{1a}",
            "/v1/{a.}",
            "/v1/{a-b}",
            "/v1/{a}/{a}",
            "/v1/{a=}",
            "/v1/users:",
            "/v1/us ers",
            "/v1/us?ers",
            "/v1/us#ers",
            "/v1/x{a}",
        ] {
            assert!(PathTemplate::parse(t).is_err(), "{t:?} should not parse");
        }
    }

    #[test]
    fn matches_and_binds() {
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
        let yes: &[Case] = &[
            ("/api/v1/users", "/api/v1/users", &[]),
            ("/api/v1/users/{user_id}", "/api/v1/users/abc", &[("user_id", "abc")]),
            ("/api/v1/users/{user_id}", "/api/v1/users/a%20b", &[("user_id", "a b")]),
            ("/api/v1/users/{user_id}", "/api/v1/users/a%2Fb", &[("user_id", "a/b")]),
            ("/api/v1/users/{user_id}", "/api/v1/users/%E2%9C%93", &[("user_id", "✓")]),
            ("/v1/{name=shelves/*/books/*}", "/v1/shelves/s1/books/b2", &[("name", "shelves/s1/books/b2")]),
            ("/v1/{name=shelves/*}/books", "/v1/shelves/7/books", &[("name", "shelves/7")]),
            ("/v1/files/{path=**}", "/v1/files/a/b/c.txt", &[("path", "a/b/c.txt")]),
            ("/v1/files/{path=**}", "/v1/files", &[("path", "")]),
            ("/v1/files/{path=**}", "/v1/files/a%2Fb/c", &[("path", "a%2Fb/c")]),
            ("/v1/{user.id}/x", "/v1/42/x", &[("user.id", "42")]),
            ("/v1/**", "/v1/anything/at/all", &[]),
            ("/api/v1/types/scalars:echo", "/api/v1/types/scalars:echo", &[]),
            ("/v1/{name=messages/*}:cancel", "/v1/messages/m1:cancel", &[("name", "messages/m1")]),
            ("/v1/items/{id}", "/v1/items/a:b", &[("id", "a:b")]),
            ("/v1/{a}/{b}", "/v1/x/y", &[("a", "x"), ("b", "y")]),
            ("/v1/users", "/v1/us%65rs", &[]),
        ];
        for (t, p, want) in yes {
            let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
            assert_eq!(caps(t, p), Some(want), "{t} vs {p}");
        }
    }

    #[test]
    fn does_not_match_other_shapes() {
        let no = [
            ("/api/v1/users", "/api/v1/users/"),
            ("/api/v1/users", "/api/v1/user"),
            ("/api/v1/users", "/api/v1/users/x"),
            ("/api/v1/users/{user_id}", "/api/v1/users"),
            ("/api/v1/users/{user_id}", "/api/v1/users/"),
            ("/api/v1/users/{user_id}", "/api/v1/users//"),
            ("/api/v1/users/{user_id}", "/api/v1/users/a/b"),
            ("/api/v1/users/{user_id}", "//api/v1/users/a"),
            ("/v1/{name=shelves/*/books/*}", "/v1/shelves/s1/books"),
            ("/v1/{name=shelves/*/books/*}", "/v1/shelves//books/b"),
            ("/v1/{name=shelves/*/books/*}", "/v1/racks/s1/books/b"),
            ("/api/v1/types/scalars:echo", "/api/v1/types/scalars"),
            ("/api/v1/types/scalars:echo", "/api/v1/types/scalars:other"),
            ("/v1/files/{path=**}", "/v1/files/a//b"),
            ("/v1/**", "/v2/x"),
        ];
        for (t, p) in no {
            assert_eq!(caps(t, p), None, "{t} should not match {p}");
        }
    }

    #[test]
    fn hostile_paths_are_errors_or_misses_never_panics() {
        let t = PathTemplate::parse("/api/v1/users/{user_id}").unwrap();
        for p in ["/api/v1/users/%", "/api/v1/users/%zz", "/api/v1/users/%C3%28", "/api/v1/users/%E2%9C"] {
            assert!(t.matches(&RequestPath::new(p).unwrap()).is_err(), "{p}");
        }
        let long = format!("/api/v1/users/{}", "a/".repeat(10_000));
        assert_eq!(t.matches(&RequestPath::new(&long).unwrap()).unwrap(), None);
        for p in ["/", "/:", "/::", "/a:b:c", "/%", "/../..", "/api/v1/users/..%2F..%2Fetc"] {
            let rp = RequestPath::new(p).unwrap();
            let _ = t.matches(&rp);
            let _ = PathTemplate::parse("/v1/**").unwrap().matches(&rp);
        }
        assert!(RequestPath::new("no-slash").is_none());
        assert_eq!(
            caps("/api/v1/users/{user_id}", "/api/v1/users/..%2F..%2Fetc"),
            Some(vec![("user_id".into(), "../../etc".into())])
        );
    }

    #[test]
    fn verbs_beat_plain_templates() {
        let plain = PathTemplate::parse("/v1/{name}").unwrap();
        let verb = PathTemplate::parse("/v1/{name}:undelete").unwrap();
        assert!(verb.specificity() > plain.specificity());
        let lit = PathTemplate::parse("/v1/users").unwrap();
        assert!(lit.specificity() > plain.specificity());
    }
}
