//! The request guard: Host allow-list (DNS rebinding), Origin check (CSRF) on state-changing requests
//! and WebSocket upgrades, and the access token (Bearer header, or a cookie a browser got from a one-time
//! `?token=`). Also the rule that a server listening beyond loopback must have a token.

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
        }
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
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .ok_or_else(|| ApiError::Forbidden("a Host header is required".into()))?;
        if !self.host_allowed(host) {
            return Err(ApiError::Forbidden(format!(
                "host {host:?} is not served here (start the server with --allow-host NAME to accept it)"
            )));
        }
        let upgrade = headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        let changes_state = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if changes_state || upgrade {
            if let Some(origin) = headers.get(header::ORIGIN) {
                let origin = origin.to_str().unwrap_or("null");
                if !same_origin(origin, host) {
                    return Err(ApiError::Forbidden(format!(
                        "cross-origin request from {origin:?} refused"
                    )));
                }
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

/// The host name of a `Host` header value, lowercased, without port or IPv6 brackets.
fn host_name(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_string();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name.to_string(),
        _ => host,
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the same host and port as the `Host` header.
fn same_origin(origin: &str, host: &str) -> bool {
    let origin = origin.trim().to_ascii_lowercase();
    let (authority, default_port) = if let Some(a) = origin.strip_prefix("http://") {
        (a, "80")
    } else if let Some(a) = origin.strip_prefix("https://") {
        (a, "443")
    } else {
        return false; // `null`, file:, chrome-extension: …
    };
    let with_port = |a: &str| -> String {
        let has_port = a.rsplit_once(':').is_some_and(|(n, p)| {
            !n.ends_with('[') && !p.contains(']') && p.chars().all(|c| c.is_ascii_digit())
        });
        if has_port {
            a.to_string()
        } else {
            format!("{a}:{default_port}")
        }
    };
    !authority.contains('/') && with_port(authority) == with_port(&host.trim().to_ascii_lowercase())
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
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(equal("abc", "abc"));
        assert!(!equal("abc", "abd"));
        assert!(!equal("abc", "abcd"));
    }
}
