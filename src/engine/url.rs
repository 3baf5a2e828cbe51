//! Engine URLs: `shm://NAME`, `redis://HOST:PORT`, `redis+unix:///PATH` and
//! `redis-cluster://HOST:PORT[,HOST:PORT…]`, parsed and checked before anything connects.

use super::EngineError;
use crate::channel::validate_name;

/// A parsed engine URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineUrl {
    /// `shm://NAME`: the shmkv server of that name on this machine.
    Shm {
        /// The server's name (checked by the same rules as `--name`).
        name: String,
    },
    /// `redis://HOST:PORT[/DB]` or `redis+unix:///PATH`: one Redis server; `url` is handed to
    /// the `redis` crate as it was given.
    Redis {
        /// The URL.
        url: String,
    },
    /// `redis-cluster://HOST:PORT[,HOST:PORT…]`: a Redis Cluster, reached through any of the
    /// nodes listed (each as `redis://HOST:PORT`).
    Cluster {
        /// The seed nodes, as `redis://HOST:PORT` URLs.
        nodes: Vec<String>,
    },
}

/// The accepted forms, for error messages.
const FORMS: &str = "use shm://NAME, redis://HOST:PORT, redis+unix:///PATH or \
                     redis-cluster://HOST:PORT[,HOST:PORT...]";

impl EngineUrl {
    /// Parses `url`; a malformed URL or an unknown scheme is [`EngineError::BadUrl`].
    pub fn parse(url: &str) -> Result<EngineUrl, EngineError> {
        let bad = |reason: String| EngineError::BadUrl {
            url: url.to_string(),
            reason,
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad(format!("not a URL; {FORMS}")));
        };
        match scheme {
            "shm" => {
                validate_name(rest).map_err(bad)?;
                Ok(EngineUrl::Shm {
                    name: rest.to_string(),
                })
            }
            "redis" => {
                host_port(rest.split('/').next().unwrap_or("")).map_err(bad)?;
                Ok(EngineUrl::Redis {
                    url: url.to_string(),
                })
            }
            "redis+unix" => {
                if !rest.starts_with('/') || rest.len() < 2 {
                    return Err(bad(
                        "a unix socket URL is redis+unix:///ABSOLUTE/PATH".into()
                    ));
                }
                Ok(EngineUrl::Redis {
                    url: url.to_string(),
                })
            }
            "redis-cluster" => {
                let mut nodes = Vec::new();
                for node in rest.split(',') {
                    host_port(node).map_err(bad)?;
                    nodes.push(format!("redis://{node}"));
                }
                Ok(EngineUrl::Cluster { nodes })
            }
            other => Err(bad(format!("unknown scheme '{other}'; {FORMS}"))),
        }
    }

    /// The engine's name: `"shm"`, `"redis"` or `"redis-cluster"`.
    pub fn kind(&self) -> &'static str {
        match self {
            EngineUrl::Shm { .. } => "shm",
            EngineUrl::Redis { .. } => "redis",
            EngineUrl::Cluster { .. } => "redis-cluster",
        }
    }
}

/// Checks `HOST:PORT` (a host name or address, and a port 1..=65535).
fn host_port(s: &str) -> Result<(), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}' is not HOST:PORT (the port is required)"))?;
    if host.is_empty() {
        return Err(format!("'{s}' has no host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("'{port}' is not a port (1..=65535)")),
    }
}
