//! What an imported image is: the one fact about an image that both the
//! import (which decides it) and the launcher (which lays out the
//! container by it) read from the record.

use serde::{Deserialize, Serialize};

/// What an imported image is, and so how its container is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An OS tree booted as the container's root (systemd installed if missing).
    Base,
    /// An application run by `sdme-oci-app.service` in `/oci/root` on a base.
    App,
    /// An application whose entrypoint is offered to other containers through a socket.
    Connector,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Base => "base",
            Kind::App => "app",
            Kind::Connector => "connector",
        }
    }
}
