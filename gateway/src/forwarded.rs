//! Who the client is, told to the backend: `X-Forwarded-For`, `X-Forwarded-Proto`,
//! `X-Forwarded-Host` and `Forwarded` (RFC 7239).
//!
//! What a client sends in these headers is only kept (and appended to) when the connection comes
//! from a trusted proxy (`--trusted-proxy`); from anyone else it would be a forgery, so it is
//! replaced by what the gateway saw itself.

use crate::connections::ClientInfo;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use ipnet::IpNet;
use std::net::IpAddr;

const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
const XFH: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The forwarding headers for one request, as (name, value) pairs.
pub fn forwarding_headers(
    headers: &HeaderMap,
    client: &ClientInfo,
    trusted: &[IpNet],
) -> Vec<(HeaderName, HeaderValue)> {
    let peer = client.addr.ip().to_canonical();
    let from_proxy = trusted.iter().any(|net| net.contains(&peer));
    let kept = |name: &HeaderName| -> Option<String> {
        if !from_proxy {
            return None;
        }
        let values: Vec<&str> = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
        (!values.is_empty()).then(|| values.join(", "))
    };
    let scheme = if client.tls { "https" } else { "http" };
    let host = headers.get(header::HOST);
    if !from_proxy {
        return untrusted(peer, client.tls, host, || build(peer, scheme, host, &kept));
    }
    build(peer, scheme, host, &kept)
}

/// What a client that is not a trusted proxy gets depends only on its address, the scheme and
/// the Host: the last answer is kept per thread and handed out again while those stay the same
/// (the common case: every request of a connection, and of every connection from one address),
/// rather than formatting the address and the `Forwarded` value again.
fn untrusted(
    peer: IpAddr,
    tls: bool,
    host: Option<&HeaderValue>,
    build: impl FnOnce() -> Vec<(HeaderName, HeaderValue)>,
) -> Vec<(HeaderName, HeaderValue)> {
    type Last = Option<(IpAddr, bool, Option<HeaderValue>, Vec<(HeaderName, HeaderValue)>)>;
    thread_local! {
        static LAST: std::cell::RefCell<Last> = const { std::cell::RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| {
        if let Some((p, t, h, out)) = last
            && *p == peer
            && *t == tls
            && h.as_ref() == host
        {
            return out.clone();
        }
        let out = build();
        *last = Some((peer, tls, host.cloned(), out.clone()));
        out
    })
}

/// The forwarding headers, built.
fn build(
    peer: IpAddr,
    scheme: &'static str,
    host: Option<&HeaderValue>,
    kept: &dyn Fn(&HeaderName) -> Option<String>,
) -> Vec<(HeaderName, HeaderValue)> {
    // Built for every request: values straight from the request's own headers where they can
    // be (a HeaderValue clone shares its bytes), one string per header otherwise, and the
    // peer's address formatted once.
    let ip = peer.to_string();
    let xff = match kept(&XFF) {
        Some(chain) => format!("{chain}, {ip}"),
        None => ip.clone(),
    };
    let proto = match kept(&XFP) {
        Some(chain) => HeaderValue::from_str(&chain).ok(),
        None => Some(HeaderValue::from_static(scheme)),
    };
    let fwd_host = match kept(&XFH) {
        Some(chain) => HeaderValue::from_str(&chain).ok(),
        None => host.filter(|h| h.to_str().is_ok()).cloned(),
    };

    let mut forwarded = kept(&header::FORWARDED).map(|mut chain| {
        chain.push_str(", ");
        chain
    });
    let f = forwarded.get_or_insert_with(|| String::with_capacity(64));
    match peer {
        IpAddr::V4(_) => {
            f.push_str("for=");
            f.push_str(&ip);
        }
        IpAddr::V6(_) => {
            f.push_str("for=\"[");
            f.push_str(&ip);
            f.push_str("]\"");
        }
    }
    f.push_str(";proto=");
    f.push_str(scheme);
    if let Some(h) = host.and_then(|h| h.to_str().ok()) {
        f.push_str(";host=\"");
        f.extend(h.chars().filter(|c| !matches!(c, '"' | '\\')));
        f.push('"');
    }

    let mut out = Vec::with_capacity(4);
    out.extend(shared(xff).map(|v| (XFF, v)));
    out.extend(proto.map(|v| (XFP, v)));
    out.extend(fwd_host.map(|v| (XFH, v)));
    out.extend(forwarded.and_then(shared).map(|v| (header::FORWARDED, v)));
    out
}

/// A header value that takes over `text`'s buffer instead of copying it.
fn shared(text: String) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(text)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(addr: &str) -> ClientInfo {
        ClientInfo { addr: addr.parse().unwrap(), tls: false }
    }

    fn get<'a>(out: &'a [(HeaderName, HeaderValue)], name: &str) -> Option<&'a str> {
        out.iter().find(|(n, _)| n == name).map(|(_, v)| v.to_str().unwrap())
    }

    fn forged() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "api.example.com".parse().unwrap());
        h.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        h.insert(header::FORWARDED, "for=6.6.6.6".parse().unwrap());
        h
    }

    #[test]
    fn untrusted_clients_cannot_forge_their_address() {
        let out = forwarding_headers(&forged(), &client("192.0.2.7:5000"), &[]);
        assert_eq!(get(&out, "x-forwarded-for"), Some("192.0.2.7"));
        assert_eq!(get(&out, "x-forwarded-proto"), Some("http"));
        assert_eq!(get(&out, "x-forwarded-host"), Some("api.example.com"));
        assert_eq!(get(&out, "forwarded"), Some("for=192.0.2.7;proto=http;host=\"api.example.com\""));
    }

    #[test]
    fn trusted_proxies_are_appended_to() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let out = forwarding_headers(&forged(), &client("10.1.2.3:5000"), &trusted);
        assert_eq!(get(&out, "x-forwarded-for"), Some("6.6.6.6, 10.1.2.3"));
        assert_eq!(get(&out, "x-forwarded-proto"), Some("https"));
        assert_eq!(get(&out, "forwarded"), Some("for=6.6.6.6, for=10.1.2.3;proto=http;host=\"api.example.com\""));
        let out = forwarding_headers(&HeaderMap::new(), &client("[::1]:80"), &trusted);
        assert_eq!(get(&out, "forwarded"), Some("for=\"[::1]\";proto=http"));
        assert_eq!(get(&out, "x-forwarded-host"), None);
    }
}
