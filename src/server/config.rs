//! `[server]`: the address the HTTP endpoints listen on. Reads only its own section.

use crate::config::{Reader, Table};
use std::net::SocketAddr;

const KEYS: &[&str] = &["listen"];

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
}

impl ServerConfig {
    /// Reads `[server]`; `None` when `listen` is not an address (reported).
    pub(crate) fn read(r: &mut Reader, root: &Table) -> Option<ServerConfig> {
        let t = r.table(root, "server");
        if let Some(t) = t {
            r.known_keys(t, "server", KEYS);
        }
        let listen = match t {
            Some(t) if t.contains_key("listen") => r.parsed(t, "server", "listen", |s| {
                s.parse::<SocketAddr>().map_err(|_| {
                    format!("{s:?} is not an address; write host:port, e.g. \"127.0.0.1:8080\"")
                })
            }),
            _ => Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
        }?;
        Some(ServerConfig { listen })
    }
}
