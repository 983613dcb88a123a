//! The part of an image configuration that says how to run it (`config` of the
//! OCI/Docker image config JSON), read from the raw bytes so that Docker-only
//! fields such as `Healthcheck` are kept.
//!
//! This is the one boundary where the image's configuration, which anyone
//! who publishes an image controls, becomes sdme's data: every field that
//! later reaches a unit, a path, a file name or a file is checked or
//! normalized here (see [`RunConfig::validate`]), so nothing downstream
//! sees a raw value. Paths are cleaned lexically as Docker does (`..`
//! resolved against `/`); NUL bytes, control characters where a value
//! names a path or an identity, unknown signals and ports, and oversized
//! values are refused with the field and the (escaped) value named.

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

mod validate;
pub use validate::{clean_path, valid_id, ConfigError};

/// Docker's `HEALTHCHECK`, durations in nanoseconds as in the JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    #[serde(default, deserialize_with = "null_as_default")]
    pub test: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub interval: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub timeout: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub start_period: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub retries: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default, deserialize_with = "null_as_default")]
    pub user: String,
    #[serde(default, deserialize_with = "map_keys")]
    pub exposed_ports: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub env: Vec<String>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default, deserialize_with = "map_keys")]
    pub volumes: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub working_dir: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub stop_signal: String,
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `{"80/tcp": {}}` (or a list, as sdme writes it back) → keys in order.
fn map_keys<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum KeysOrList {
        Map(BTreeMap<String, serde_json::Value>),
        List(Vec<String>),
    }
    Ok(match Option::<KeysOrList>::deserialize(d)? {
        None => Vec::new(),
        Some(KeysOrList::Map(m)) => m.into_keys().collect(),
        Some(KeysOrList::List(l)) => l,
    })
}

impl RunConfig {
    /// Reads `config` from a raw image configuration; a missing `config` is an
    /// image with nothing set.
    pub fn from_image_config(raw: &[u8]) -> Result<RunConfig, String> {
        #[derive(Deserialize)]
        struct Outer {
            #[serde(default)]
            config: Option<RunConfig>,
        }
        let outer: Outer = serde_json::from_slice(raw)
            .map_err(|e| format!("image configuration is not valid JSON: {e}"))?;
        outer
            .config
            .unwrap_or_default()
            .validate()
            .map_err(|e| e.to_string())
    }

    /// The environment as `(name, value)` pairs (entries were checked by
    /// [`RunConfig::validate`]).
    pub fn env_pairs(&self) -> Vec<(&str, &str)> {
        self.env.iter().filter_map(|e| e.split_once('=')).collect()
    }

    pub fn entrypoint(&self) -> &[String] {
        self.entrypoint.as_deref().unwrap_or(&[])
    }

    pub fn cmd(&self) -> &[String] {
        self.cmd.as_deref().unwrap_or(&[])
    }

    /// The value of `NAME` in the image's environment.
    pub fn env_value(&self, name: &str) -> Option<&str> {
        self.env.iter().rev().find_map(|e| {
            let (k, v) = e.split_once('=')?;
            (k == name).then_some(v)
        })
    }

    /// The healthcheck to run, if the image declares one that is not `NONE`.
    pub fn effective_healthcheck(&self) -> Option<&Healthcheck> {
        let hc = self.healthcheck.as_ref()?;
        match hc.test.first().map(String::as_str) {
            Some("CMD") | Some("CMD-SHELL") if hc.test.len() > 1 => Some(hc),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_config_with_healthcheck_and_nulls() {
        let raw = br#"{"architecture":"amd64","config":{"User":"101:101","ExposedPorts":{"80/tcp":{},"443/tcp":{}},
            "Env":["PATH=/usr/bin","A=1"],"Entrypoint":["/docker-entrypoint.sh"],"Cmd":["nginx","-g","daemon off;"],
            "Volumes":{"/data":{}},"WorkingDir":"","StopSignal":"SIGQUIT","Labels":null,
            "Healthcheck":{"Test":["CMD-SHELL","curl -f http://localhost/"],"Interval":5000000000,"Retries":2}},
            "rootfs":{"type":"layers","diff_ids":[]}}"#;
        let c = RunConfig::from_image_config(raw).unwrap();
        assert_eq!(c.user, "101:101");
        assert_eq!(c.exposed_ports, vec!["443/tcp", "80/tcp"]);
        assert_eq!(c.entrypoint(), ["/docker-entrypoint.sh"]);
        assert_eq!(c.cmd().len(), 3);
        assert_eq!(c.volumes, vec!["/data"]);
        assert_eq!(c.stop_signal, "SIGQUIT");
        assert_eq!(c.env_value("A"), Some("1"));
        let hc = c.effective_healthcheck().unwrap();
        assert_eq!(hc.interval, 5_000_000_000);
        assert_eq!(hc.retries, 2);
        assert_eq!(hc.timeout, 0);
    }

    #[test]
    fn missing_config_and_null_fields_are_empty() {
        let c = RunConfig::from_image_config(br#"{"rootfs":{}}"#).unwrap();
        assert_eq!(c, RunConfig::default());
        let c = RunConfig::from_image_config(
            br#"{"config":{"Env":null,"Cmd":null,"ExposedPorts":null}}"#,
        )
        .unwrap();
        assert!(c.env.is_empty() && c.cmd.is_none() && c.exposed_ports.is_empty());
        assert!(RunConfig::from_image_config(b"not json").is_err());
    }

    #[test]
    fn healthcheck_none_is_ignored() {
        let c = RunConfig::from_image_config(br#"{"config":{"Healthcheck":{"Test":["NONE"]}}}"#)
            .unwrap();
        assert!(c.effective_healthcheck().is_none());
    }

    #[test]
    fn round_trips_through_json() {
        let raw = br#"{"config":{"ExposedPorts":{"80/tcp":{}},"Volumes":{"/v":{}},"Cmd":["sh"]}}"#;
        let c = RunConfig::from_image_config(raw).unwrap();
        let back: RunConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
