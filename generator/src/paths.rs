//! Installed paths the generated units refer to. Fixed at build time: they
//! must match `make install` (see HACKING.md, "Installed paths").

pub const IMPORT: &str = "/usr/bin/sdme-import";
pub const LAUNCHER: &str = "/usr/libexec/sdme/sdme-nspawn";
/// The host's systemctl (merged /usr: also /bin/systemctl on Debian 12).
pub const SYSTEMCTL: &str = "/usr/bin/systemctl";
/// Runs a command in a machine's network namespace (the port proxies).
pub const NETNS: &str = "/usr/libexec/sdme/sdme-netns";
/// systemd's socket proxy, as Debian and the other merged-/usr systems ship it.
pub const SOCKET_PROXYD: &str = "/usr/lib/systemd/systemd-socket-proxyd";
pub const CONNECTOR_SERVER: &str = "/usr/libexec/sdme/sdme-connector-server";
pub const CONNECTOR_CLIENT: &str = "/usr/libexec/sdme/sdme-connector-client";
/// Where the connector binaries appear inside a container.
pub const CONNECTOR_SERVER_INSIDE: &str = "/usr/libexec/sdme-connector-server";
pub const CONNECTOR_CLIENT_INSIDE: &str = "/usr/libexec/sdme-connector-client";
/// Host directory holding each connector's socket directory.
pub const CONNECTORS: &str = "/var/lib/sdme/connectors";
/// The mode of a connector's host socket: any local user may call it (the
/// same as the socket the container binds itself; see sdme-connector(1)).
pub const CONNECTOR_SOCKET_MODE: &str = "0666";
/// Where a connector directory appears inside a container.
pub const CONNECTORS_INSIDE: &str = "/connectors";
/// The stock template `[Install]` symlinks of containers point at, as
/// `systemctl enable systemd-nspawn@NAME` would make them.
pub const NSPAWN_TEMPLATE: &str = "/usr/lib/systemd/system/systemd-nspawn@.service";
/// The drop-in the generator writes for each container.
pub const DROPIN_NAME: &str = "50-sdme.conf";
/// Import timeout unless `ImportTimeoutSec=` says otherwise: large images
/// over slow links take a while, and a stuck import should still end.
pub const DEFAULT_IMPORT_TIMEOUT: &str = "30min";
/// The launcher's runtime files of a container live in
/// `/run/RUNTIME_DIR/NAME` (`RuntimeDirectory=`, removed when it stops).
pub const RUNTIME_DIR: &str = "sdme-containers";
/// The store: every import and container needs its file system mounted.
pub const STORE: &str = "/var/lib/sdme";
