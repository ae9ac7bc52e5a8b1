//! The servers a load run targets, which must be on loopback: a load generator pointed at
//! somebody else's server is an attack, so anything else is refused.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Why a target URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Not `scheme://host[:port][/path]` with the expected scheme.
    #[error("{url}: expected {scheme}://HOST[:PORT][/PATH]")]
    Malformed {
        /// The URL given.
        url: String,
        /// The scheme expected.
        scheme: &'static str,
    },
    /// The host is not a loopback address.
    #[error(
        "{url}: {host} is not a loopback address; sigma-load only targets 127.0.0.0/8, ::1 or localhost"
    )]
    NotLoopback {
        /// The URL given.
        url: String,
        /// Its host.
        host: String,
    },
}

/// An HTTP origin on loopback and the path prefix streams live under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpEndpoint {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The `Host` header value.
    pub host: String,
    /// Path prefix without a trailing slash (`/live`), or empty.
    pub prefix: String,
}

impl HttpEndpoint {
    /// Parses `http://HOST[:PORT][/PREFIX]`.
    pub fn parse(url: &str) -> Result<Self, EndpointError> {
        let (addr, host, path) = split(url, "http", 80)?;
        Ok(HttpEndpoint {
            addr,
            host,
            prefix: path.trim_end_matches('/').to_owned(),
        })
    }

    /// The multivariant (or only) playlist of `stream`: `{prefix}/{stream}/index.m3u8`.
    pub fn index_path(&self, stream: &str) -> String {
        format!("{}/{stream}/index.m3u8", self.prefix)
    }
}

/// Checks an `rtmp://HOST[:PORT]/APP` prefix; returns it without a trailing slash.
pub fn rtmp_prefix(url: &str) -> Result<String, EndpointError> {
    split(url, "rtmp", 1935)?;
    Ok(url.trim_end_matches('/').to_owned())
}

/// Resolves a playlist `uri` against the path of the playlist it came from (RFC 3986 §5.2 for
/// the relative-path and absolute-path cases; absolute URLs keep only their path, and must point
/// at the same origin).
pub fn resolve(base_path: &str, uri: &str, endpoint: &HttpEndpoint) -> Option<String> {
    if let Some(rest) = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
    {
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        return (authority == endpoint.host).then(|| path.to_owned());
    }
    if uri.starts_with('/') {
        return Some(uri.to_owned());
    }
    let base = base_path.split('?').next().unwrap_or(base_path);
    let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
    Some(format!("{dir}{uri}"))
}

fn split(
    url: &str,
    scheme: &'static str,
    default_port: u16,
) -> Result<(SocketAddr, String, String), EndpointError> {
    let malformed = || EndpointError::Malformed {
        url: url.to_owned(),
        scheme,
    };
    let rest = url
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
        .ok_or_else(malformed)?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() || authority.contains('@') {
        return Err(malformed());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(malformed)?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| malformed())?,
        None => default_port,
    };
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse::<IpAddr>()
            .map_err(|_| EndpointError::NotLoopback {
                url: url.to_owned(),
                host: host.to_owned(),
            })?
    };
    if !ip.is_loopback() {
        return Err(EndpointError::NotLoopback {
            url: url.to_owned(),
            host: host.to_owned(),
        });
    }
    Ok((
        SocketAddr::new(ip, port),
        authority.to_owned(),
        path.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only() {
        let e = HttpEndpoint::parse("http://127.0.0.1:8080/live/").unwrap();
        assert_eq!(e.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(e.host, "127.0.0.1:8080");
        assert_eq!(e.index_path("s1"), "/live/s1/index.m3u8");
        let e = HttpEndpoint::parse("http://[::1]").unwrap();
        assert_eq!(e.addr, "[::1]:80".parse().unwrap());
        assert_eq!(e.index_path("a"), "/a/index.m3u8");
        assert!(HttpEndpoint::parse("http://localhost:1/x").is_ok());
        assert!(rtmp_prefix("rtmp://127.0.0.2:1935/live").is_ok());
        for bad in [
            "http://10.0.0.1/live",
            "http://example.com/",
            "http://0.0.0.0:80",
        ] {
            assert!(
                matches!(
                    HttpEndpoint::parse(bad),
                    Err(EndpointError::NotLoopback { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            rtmp_prefix("rtmp://192.168.1.1/live"),
            Err(EndpointError::NotLoopback { .. })
        ));
        for bad in [
            "ftp://127.0.0.1/",
            "http://",
            "http://127.0.0.1:x/",
            "http://u@127.0.0.1/",
        ] {
            assert!(
                matches!(
                    HttpEndpoint::parse(bad),
                    Err(EndpointError::Malformed { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn resolves_playlist_uris() {
        let e = HttpEndpoint::parse("http://127.0.0.1:8080/live").unwrap();
        let base = "/live/s1/video.m3u8?_HLS_msn=3&_HLS_part=1";
        assert_eq!(
            resolve(base, "video/e1/part-3.1.m4s", &e).as_deref(),
            Some("/live/s1/video/e1/part-3.1.m4s")
        );
        assert_eq!(resolve(base, "/hls/x.ts", &e).as_deref(), Some("/hls/x.ts"));
        assert_eq!(
            resolve(base, "http://127.0.0.1:8080/a/b.ts", &e).as_deref(),
            Some("/a/b.ts")
        );
        assert_eq!(resolve(base, "http://10.1.1.1/a/b.ts", &e), None);
    }
}
