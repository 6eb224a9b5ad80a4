//! `serve --config FILE`: a TOML file of `serve` settings, keyed by the long flag names
//! (`listen = "0.0.0.0:8080"`, `store = "clickhouse://..."`, `cors-origin = ["https://..."]`).
//!
//! The file's settings become command-line arguments before clap parses, for every flag that
//! neither the command line nor the flag's environment variable sets, so the order of
//! precedence is: command line, environment, file, built-in default. Every key is checked
//! against the flags `serve` has, so a misspelt key is an error, not a silently ignored line.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::CommandFactory;

use crate::cli::Cli;

const CONFIG_FLAG: &str = "config";
const CONFIG_ENV: &str = "TRACEHOUSE_CONFIG";

/// The arguments with the config file's settings added, or unchanged when the command is not
/// `serve` or no file is named.
pub(crate) fn apply(args: Vec<OsString>) -> anyhow::Result<Vec<OsString>> {
    if args.get(1).map(OsString::as_os_str) != Some(OsStr::new("serve")) {
        return Ok(args);
    }
    let Some(path) = config_path(&args[2..]) else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let extra = arguments_from(&text, &args[2..], |name| std::env::var_os(name).is_some())
        .with_context(|| format!("invalid config file {}", path.display()))?;
    let mut args = args;
    args.extend(extra);
    Ok(args)
}

/// `--config FILE` or `--config=FILE` on the command line, else `TRACEHOUSE_CONFIG`.
fn config_path(serve_args: &[OsString]) -> Option<PathBuf> {
    let flag = format!("--{CONFIG_FLAG}");
    let with_value = format!("--{CONFIG_FLAG}=");
    let mut iter = serve_args.iter();
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text == flag {
            return iter.next().map(PathBuf::from);
        }
        if let Some(value) = text.strip_prefix(&with_value) {
            return Some(PathBuf::from(value));
        }
    }
    std::env::var_os(CONFIG_ENV).map(PathBuf::from)
}

/// Whether `--name` appears among the arguments, alone or as `--name=value`.
fn given_on_command_line(serve_args: &[OsString], name: &str) -> bool {
    let flag = format!("--{name}");
    let with_value = format!("--{name}=");
    serve_args.iter().any(|arg| {
        let text = arg.to_string_lossy();
        text == flag || text.starts_with(&with_value)
    })
}

/// The arguments a config file adds: `--flag value` for every setting not already given on
/// the command line or in the environment (`env_is_set` tells which variables are).
fn arguments_from(
    text: &str,
    serve_args: &[OsString],
    env_is_set: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<OsString>> {
    let table: toml::Table = text.parse().context("not valid TOML")?;
    let command = Cli::command();
    let Some(serve) = command.find_subcommand("serve") else {
        bail!("the serve command is missing from the command line definition");
    };
    let known: Vec<&clap::Arg> = serve
        .get_arguments()
        .filter(|arg| arg.get_long().is_some_and(|long| long != CONFIG_FLAG))
        .collect();
    let mut extra = Vec::new();
    for (key, value) in &table {
        let name = key.replace('_', "-");
        let Some(arg) = known
            .iter()
            .find(|arg| arg.get_long() == Some(name.as_str()))
        else {
            let names: Vec<&str> = known.iter().filter_map(|arg| arg.get_long()).collect();
            bail!("unknown setting {key:?}: use one of {}", names.join(", "));
        };
        let from_env = arg
            .get_env()
            .and_then(OsStr::to_str)
            .is_some_and(&env_is_set);
        if given_on_command_line(serve_args, &name) || from_env {
            continue;
        }
        let values = match value {
            toml::Value::Array(items) => items.iter().map(scalar_text).collect(),
            scalar => vec![scalar_text(scalar)],
        };
        for value in values {
            let value = value.with_context(|| format!("setting {key:?}"))?;
            extra.push(OsString::from(format!("--{name}")));
            extra.push(OsString::from(value));
        }
    }
    Ok(extra)
}

fn scalar_text(value: &toml::Value) -> anyhow::Result<String> {
    Ok(match value {
        toml::Value::String(text) => text.clone(),
        toml::Value::Integer(number) => number.to_string(),
        toml::Value::Float(number) => number.to_string(),
        toml::Value::Boolean(flag) => flag.to_string(),
        other => bail!("must be a string, a number or a list of them, not {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn added(text: &str, serve_args: &[&str], env: &[&str]) -> anyhow::Result<Vec<String>> {
        let extra = arguments_from(text, &args(serve_args), |name| env.contains(&name))?;
        Ok(extra
            .into_iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect())
    }

    #[test]
    fn settings_become_flags_unless_the_command_line_or_environment_sets_them() {
        let file = r#"
            listen = "0.0.0.0:9000"
            max_body_bytes = 1024
            rate-limit = 5
            cors-origin = ["https://a.example", "https://b.example"]
            data-dir = "/srv/tracehouse"
        "#;
        assert_eq!(
            added(file, &["--listen", "127.0.0.1:1"], &["TRACEHOUSE_DATA_DIR"]).unwrap(),
            [
                "--cors-origin",
                "https://a.example",
                "--cors-origin",
                "https://b.example",
                "--max-body-bytes",
                "1024",
                "--rate-limit",
                "5",
            ]
        );
        assert_eq!(
            added("listen = \"0.0.0.0:9000\"", &["--listen=127.0.0.1:1"], &[]).unwrap(),
            Vec::<String>::new()
        );
    }

    /// The gRPC listener is configured like the HTTP one, `off` included, and parses to the
    /// address or to no listener.
    #[test]
    fn grpc_listen_comes_from_the_file_too() {
        use clap::Parser;

        use crate::cli::{Command, GrpcListen};

        let grpc = |extra: &[String]| {
            let mut argv = vec!["tracehouse".to_owned(), "serve".to_owned()];
            argv.extend(extra.iter().cloned());
            match Cli::try_parse_from(argv).unwrap().command {
                Command::Serve(serve) => serve.grpc_listen,
                other => panic!("parsed {other:?}"),
            }
        };
        let off = added("grpc-listen = \"off\"", &[], &[]).unwrap();
        assert_eq!(off, ["--grpc-listen", "off"]);
        assert_eq!(grpc(&off), GrpcListen::Off);
        let any = added(
            "grpc_listen = \"0.0.0.0:4318\"",
            &[],
            &["TRACEHOUSE_GRPC_LISTEN"],
        )
        .unwrap();
        assert!(any.is_empty(), "the environment wins over the file");
        let on = added("grpc_listen = \"0.0.0.0:4318\"", &[], &[]).unwrap();
        assert_eq!(grpc(&on), GrpcListen::On("0.0.0.0:4318".parse().unwrap()));
        assert!(Cli::try_parse_from(["tracehouse", "serve", "--grpc-listen", "nowhere"]).is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_that_name_them() {
        let error = added("lissen = \"x\"", &[], &[]).unwrap_err().to_string();
        assert!(error.contains("unknown setting \"lissen\""), "{error}");
        assert!(error.contains("listen"), "{error}");
        let error = format!("{:#}", added("listen = { a = 1 }", &[], &[]).unwrap_err());
        assert!(error.contains("setting \"listen\""), "{error}");
        assert!(added("listen = ", &[], &[]).is_err());
    }

    #[test]
    fn the_file_is_named_by_flag_or_environment() {
        assert_eq!(
            config_path(&args(&["--config", "a.toml"])),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            config_path(&args(&["--listen", "x", "--config=b.toml"])),
            Some(PathBuf::from("b.toml"))
        );
    }
}
