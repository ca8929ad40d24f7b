//! The request guard: Host allow-list (DNS rebinding), Origin check (CSRF) on state-changing requests
//! and upgrades, a declared body over the limit (refused before it is read), and the access token (Bearer
//! header, or a cookie a browser got from a one-time `?token=`). Also the rule that a server listening
//! beyond loopback must have a token.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The cookie a browser holds after bringing the token once as `?token=`.
pub const TOKEN_COOKIE: &str = "omnigen_token";

/// Why the server refuses to start.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to listen on {0} without an access token: anyone who can reach that address could run \
     graphs and read your files. Pass --token SECRET or set OMNIGEN_TOKEN=SECRET (clients then send \
     `Authorization: Bearer SECRET`; a browser opens http://HOST:PORT/?token=SECRET once), or listen \
     on 127.0.0.1"
)]
pub struct NeedsToken(pub SocketAddr);

/// Listening on anything but a loopback address needs a token.
pub fn check_listen(addr: SocketAddr, token: Option<&str>) -> Result<(), NeedsToken> {
    if addr.ip().is_loopback() || token.is_some_and(|t| !t.is_empty()) {
        Ok(())
    } else {
        Err(NeedsToken(addr))
    }
}

/// What the guard checks against.
#[derive(Debug, Clone)]
pub struct Guard {
    token: Option<String>,
    hosts: Vec<String>,
    any_ip_host: bool,
    max_body: Option<u64>,
}

impl Guard {
    /// A guard for a server listening on `listen`, accepting `extra_hosts` besides loopback names.
    pub fn new(listen: SocketAddr, token: Option<String>, extra_hosts: &[String]) -> Self {
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(String::from)
            .chain(extra_hosts.iter().map(|h| h.to_ascii_lowercase()))
            .collect();
        if !listen.ip().is_unspecified() {
            hosts.push(listen.ip().to_string());
        }
        Guard {
            token: token.filter(|t| !t.is_empty()),
            hosts,
            // Bound to every interface: the machine's own addresses are not known in advance, but an IP
            // literal cannot be a rebinding attack (that needs a name). The token still applies.
            any_ip_host: listen.ip().is_unspecified(),
            max_body: None,
        }
    }

    /// Also refuses (413) a request whose declared `Content-Length` is over `limit`, before any of its
    /// body is read. Bodies without a length are cut at the same limit by the routes' body limit.
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        self.max_body = u64::try_from(limit).ok();
        self
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host);
        self.hosts.iter().any(|h| h == &name)
            || (self.any_ip_host && name.parse::<std::net::IpAddr>().is_ok())
    }

    /// Checks one request; `Err` is the refusal to send.
    fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<bool, ApiError> {
        let host = single_host(headers)?;
        if !self.host_allowed(host) {
            return Err(ApiError::Forbidden(format!(
                "host {host:?} is not served here (start the server with --allow-host NAME to accept it)"
            )));
        }
        // Any Upgrade (not only a well-spelled `websocket`) gets the state-changing rule: what a
        // handler accepts as an upgrade is its business, the Origin check must not depend on it.
        let upgrade = headers.contains_key(header::UPGRADE);
        let changes_state = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if changes_state || upgrade {
            for origin in headers.get_all(header::ORIGIN) {
                let origin = origin.to_str().unwrap_or("null");
                if !same_origin(origin, host) {
                    return Err(ApiError::Forbidden(format!(
                        "cross-origin request from {origin:?} refused"
                    )));
                }
            }
        }
        if let Some(limit) = self.max_body {
            let declared = headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if declared.is_some_and(|n| n > limit) {
                return Err(ApiError::TooLarge {
                    limit: usize::try_from(limit).unwrap_or(usize::MAX),
                });
            }
        }
        let Some(token) = &self.token else {
            return Ok(false);
        };
        if bearer(headers).is_some_and(|t| equal(t, token))
            || cookie(headers, TOKEN_COOKIE).is_some_and(|t| equal(t, token))
        {
            return Ok(false);
        }
        if query_token(query).is_some_and(|t| equal(&t, token)) {
            return Ok(true);
        }
        Err(ApiError::Unauthorized(
            "missing or wrong access token: send `Authorization: Bearer TOKEN`".into(),
        ))
    }
}

/// The request's one `Host` header. HTTP/1.1 requires exactly one with a valid value, and a 400 for
/// anything else (RFC 9112 §3.2); a second one could otherwise smuggle a name past the allow-list.
fn single_host(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) => host
            .to_str()
            .ok()
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| ApiError::BadRequest("the Host header is not a valid host".into())),
        (None, _) => Err(ApiError::BadRequest("a Host header is required".into())),
        (Some(_), Some(_)) => Err(ApiError::BadRequest(
            "more than one Host header in the request".into(),
        )),
    }
}

/// The middleware: refuses what the guard refuses; a valid `?token=` also sets the cookie.
pub async fn guard(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let set_cookie = match guard.check(request.method(), request.headers(), request.uri().query()) {
        Ok(set) => set,
        Err(refusal) => return refusal.into_response(),
    };
    let token = guard.token.clone();
    let mut response = next.run(request).await;
    if let (true, Some(token)) = (set_cookie, token) {
        let cookie = format!("{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// A `Host` header (or an origin's authority) split into its lowercased name, without IPv6 brackets,
/// and its port if one is written. `None` when it is not of the form `name[:digits]` or `[v6][:digits]`.
fn split_authority(authority: &str) -> Option<(String, Option<&str>)> {
    let authority = authority.trim();
    let (name, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (name, after) = rest.split_once(']')?;
        match after {
            "" => (name, None),
            _ => (name, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (authority, None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = !name.is_empty()
        && !name.contains(['[', ']', '@', '/', '\\', ' '])
        && (authority.starts_with('[') || !name.contains(':'));
    (port_ok && name_ok).then(|| (name.to_ascii_lowercase(), port))
}

/// The host name of a `Host` header value, lowercased, without port or IPv6 brackets; the whole value
/// (which matches nothing) when it is malformed.
fn host_name(host: &str) -> String {
    split_authority(host).map_or_else(|| host.to_string(), |(name, _)| name)
}

/// Whether `origin` (`scheme://host[:port]`) is the origin the `Host` header names. The server speaks
/// plain HTTP, so an `http` origin must match name and port (80 when not written). An `https` origin is
/// accepted only for a `Host` without a port, which is what a TLS-terminating proxy forwarding the
/// public name sends; a page claiming `https` on this server's own port is someone else's.
fn same_origin(origin: &str, host: &str) -> bool {
    let origin = origin.trim().to_ascii_lowercase();
    let (scheme, authority) = match origin.split_once("://") {
        Some((scheme @ ("http" | "https"), authority)) => (scheme, authority),
        _ => return false, // `null`, file:, chrome-extension: …
    };
    let (Some((origin_name, origin_port)), Some((host_name, host_port))) =
        (split_authority(authority), split_authority(host))
    else {
        return false;
    };
    if origin_name != host_name {
        return false;
    }
    let number = |p: Option<&str>, default: u16| p.map_or(Some(default), |p| p.parse::<u16>().ok());
    match scheme {
        "http" => {
            let port = number(origin_port, 80);
            port.is_some() && port == number(host_port, 80)
        }
        _ => host_port.is_none() && number(origin_port, 443) == Some(443),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v.to_string())
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_policy() {
        let lo: SocketAddr = "127.0.0.1:8188".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8188".parse().unwrap();
        assert!(check_listen(lo, None).is_ok());
        assert!(check_listen("[::1]:1".parse().unwrap(), None).is_ok());
        let err = check_listen(any, None).unwrap_err().to_string();
        assert!(
            err.contains("--token") && err.contains("OMNIGEN_TOKEN"),
            "{err}"
        );
        assert!(check_listen(any, Some("")).is_err());
        assert!(check_listen(any, Some("s3cret")).is_ok());
    }

    #[test]
    fn host_names() {
        assert_eq!(host_name("LocalHost:8188"), "localhost");
        assert_eq!(host_name("[::1]:8188"), "::1");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
    }

    #[test]
    fn origins() {
        assert!(same_origin("http://127.0.0.1:8188", "127.0.0.1:8188"));
        assert!(same_origin("http://localhost", "localhost:80"));
        assert!(same_origin("http://[::1]:8188", "[::1]:8188"));
        assert!(!same_origin("http://evil.example", "127.0.0.1:8188"));
        assert!(!same_origin("http://127.0.0.1:9999", "127.0.0.1:8188"));
        assert!(!same_origin("null", "127.0.0.1:8188"));
        assert!(!same_origin("file://", "127.0.0.1:8188"));
        // Scheme, userinfo, paths and look-alike names.
        assert!(!same_origin("https://127.0.0.1:8188", "127.0.0.1:8188"));
        assert!(same_origin("https://gen.example", "gen.example"));
        assert!(!same_origin("https://gen.example:8443", "gen.example"));
        assert!(!same_origin(
            "http://127.0.0.1:8188@evil.example",
            "127.0.0.1:8188"
        ));
        assert!(!same_origin("http://127.0.0.1:8188/x", "127.0.0.1:8188"));
        assert!(!same_origin(
            "http://localhost.evil.example:8188",
            "localhost:8188"
        ));
        assert!(!same_origin("ws://127.0.0.1:8188", "127.0.0.1:8188"));
    }

    #[test]
    fn malformed_hosts_match_nothing() {
        let guard = Guard::new("127.0.0.1:8188".parse().unwrap(), None, &[]);
        for host in [
            "[::1].evil.example",
            "[::1]evil",
            "localhost:8188:1",
            "localhost:",
            "evil@localhost",
            "localhost.",
            "127.1",
            "2130706433",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(!guard.host_allowed(host), "{host}");
        }
        for host in ["localhost", "LOCALHOST:8188", "[::1]:8188", "127.0.0.1:1"] {
            assert!(guard.host_allowed(host), "{host}");
        }
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(equal("abc", "abc"));
        assert!(!equal("abc", "abd"));
        assert!(!equal("abc", "abcd"));
    }
}
