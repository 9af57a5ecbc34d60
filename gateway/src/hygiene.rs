//! Checks every request gets before routing: what HTTP itself requires, and the bounds that keep
//! one client's request from breaking the backend connection that every client shares.

use crate::error::GatewayError;
use http::{Request, Version, header};

/// Bytes HTTP/2 adds to each header when it counts a header list (RFC 9113 §6.5.2).
const HEADER_OVERHEAD: usize = 32;

/// The size of a header section as HTTP/2 counts it: names, values and 32 bytes a header.
pub fn header_list_size(headers: &http::HeaderMap) -> usize {
    headers.iter().map(|(n, v)| n.as_str().len() + v.len() + HEADER_OVERHEAD).sum()
}

/// Refuses a request that must not go further: headers over `max_header_size` (431), or an
/// HTTP/1.1 request without exactly one Host header (400, RFC 9112 §3.2).
pub fn check_request<B>(req: &Request<B>, max_header_size: usize) -> Result<(), GatewayError> {
    let size = header_list_size(req.headers());
    if size > max_header_size {
        return Err(GatewayError::HeadersTooLarge { size, limit: max_header_size });
    }
    if req.version() == Version::HTTP_11 {
        let hosts = req.headers().get_all(header::HOST).iter().count();
        if hosts != 1 {
            return Err(GatewayError::BadRequest(format!(
                "an HTTP/1.1 request needs exactly one Host header, this one has {hosts}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().version(version).uri("/x");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn header_bounds_and_host_rules() {
        assert!(check_request(&req(Version::HTTP_11, &[("host", "a")]), 1024).is_ok());
        assert!(check_request(&req(Version::HTTP_10, &[]), 1024).is_ok());
        assert!(check_request(&req(Version::HTTP_2, &[]), 1024).is_ok());
        for bad in [vec![], vec![("host", "a"), ("host", "b")]] {
            match check_request(&req(Version::HTTP_11, &bad), 1024) {
                Err(GatewayError::BadRequest(_)) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let big = "x".repeat(2000);
        match check_request(&req(Version::HTTP_11, &[("host", "a"), ("grpc-metadata-x", &big)]), 1024) {
            Err(GatewayError::HeadersTooLarge { size, limit: 1024 }) => assert!(size > 2000),
            other => panic!("{other:?}"),
        }
    }
}
