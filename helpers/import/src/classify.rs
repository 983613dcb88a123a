//! Base OS image or application image.

use sdme_store::runconfig::RunConfig;
pub use sdme_store::Kind;

/// `--mode=`: `auto` classifies, the others force a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Force(Kind),
}

impl Mode {
    pub fn parse(s: &str) -> Result<Mode, String> {
        Ok(match s {
            "auto" => Mode::Auto,
            "base" => Mode::Force(Kind::Base),
            "app" => Mode::Force(Kind::App),
            "connector" => Mode::Force(Kind::Connector),
            _ => {
                return Err(format!(
                    "invalid --mode={s:?}: expected auto, base, app or connector"
                ))
            }
        })
    }
}

const SHELLS: &[&str] = &[
    "sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "fish", "tcsh", "csh",
];

/// The seed's rule: a base OS image has no entrypoint, a shell (or nothing) as
/// its command and no exposed ports; anything else is an application.
pub fn classify(config: &RunConfig) -> Kind {
    let no_entrypoint = config.entrypoint().is_empty();
    let shell_cmd = match config.cmd().first() {
        None => true,
        Some(prog) => {
            let name = prog.rsplit('/').next().unwrap_or(prog);
            SHELLS.contains(&name) && config.cmd().len() <= 2
        }
    };
    if no_entrypoint && shell_cmd && config.exposed_ports.is_empty() {
        Kind::Base
    } else {
        Kind::App
    }
}

pub fn decide(mode: Mode, config: &RunConfig) -> Kind {
    match mode {
        Mode::Auto => classify(config),
        Mode::Force(kind) => kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> RunConfig {
        RunConfig::from_image_config(format!("{{\"config\":{json}}}").as_bytes()).unwrap()
    }

    #[test]
    fn os_images_are_base() {
        assert_eq!(classify(&cfg(r#"{"Cmd":["/bin/bash"]}"#)), Kind::Base);
        assert_eq!(classify(&cfg(r#"{"Cmd":["bash"]}"#)), Kind::Base);
        assert_eq!(classify(&cfg(r#"{"Cmd":["/bin/sh"]}"#)), Kind::Base);
        assert_eq!(classify(&cfg(r#"{}"#)), Kind::Base);
        assert_eq!(classify(&RunConfig::default()), Kind::Base);
    }

    #[test]
    fn anything_else_is_an_app() {
        assert_eq!(
            classify(&cfg(
                r#"{"Entrypoint":["/docker-entrypoint.sh"],"Cmd":["nginx"]}"#
            )),
            Kind::App
        );
        assert_eq!(classify(&cfg(r#"{"Cmd":["redis-server"]}"#)), Kind::App);
        assert_eq!(
            classify(&cfg(r#"{"Cmd":["/bin/sh"],"ExposedPorts":{"80/tcp":{}}}"#)),
            Kind::App
        );
        assert_eq!(classify(&cfg(r#"{"Entrypoint":["/bin/sh"]}"#)), Kind::App);
        assert_eq!(
            classify(&cfg(r#"{"Cmd":["sh","-c","exec httpd -f"]}"#)),
            Kind::App
        );
    }

    #[test]
    fn mode_overrides() {
        let app = cfg(r#"{"Cmd":["redis-server"]}"#);
        assert_eq!(decide(Mode::parse("base").unwrap(), &app), Kind::Base);
        assert_eq!(
            decide(Mode::parse("connector").unwrap(), &app),
            Kind::Connector
        );
        assert_eq!(decide(Mode::parse("auto").unwrap(), &app), Kind::App);
        assert!(Mode::parse("nope").is_err());
    }
}
