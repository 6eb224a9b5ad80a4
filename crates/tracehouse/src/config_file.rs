//! `serve --config FILE`: a TOML file of `serve` settings, keyed by the long flag names
//! (`listen = "0.0.0.0:8080"`, `store = "clickhouse://..."`, `cors-origin = ["https://..."]`),
//! and `[projects.NAME]` tables of a project's own settings (`retention-days`,
//! `content-retention-days`). `retention run --config FILE` reads the same file and takes the
//! settings it has (store and retention), ignoring the server's others.
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
    let word = |index: usize| args.get(index).map(OsString::as_os_str);
    let (command, first_own) = if word(1) == Some(OsStr::new("serve")) {
        (&["serve"][..], 2)
    } else if word(1) == Some(OsStr::new("retention")) && word(2) == Some(OsStr::new("run")) {
        (&["retention", "run"][..], 3)
    } else {
        return Ok(args);
    };
    let Some(path) = config_path(&args[first_own..]) else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let extra = arguments_from(&text, command, &args[first_own..], |name| {
        std::env::var_os(name).is_some()
    })
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
    command: &[&str],
    serve_args: &[OsString],
    env_is_set: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<OsString>> {
    let table: toml::Table = text.parse().context("not valid TOML")?;
    let root = Cli::command();
    let Some(serve) = root.find_subcommand("serve") else {
        bail!("the serve command is missing from the command line definition");
    };
    let mut target = &root;
    for word in command {
        let Some(sub) = target.find_subcommand(word) else {
            bail!("the {word} command is missing from the command line definition");
        };
        target = sub;
    }
    let flags = |command: &clap::Command| -> Vec<clap::Arg> {
        command
            .get_arguments()
            .filter(|arg| arg.get_long().is_some_and(|long| long != CONFIG_FLAG))
            .cloned()
            .collect()
    };
    // Every key must be a server setting; commands other than `serve` take the ones they have.
    let known = flags(serve);
    let own = flags(target);
    let mut extra = Vec::new();
    for (key, value) in &table {
        let name = key.replace('_', "-");
        if name == PROJECTS_TABLE {
            extra.extend(project_arguments(value)?);
            continue;
        }
        if !known
            .iter()
            .any(|arg| arg.get_long() == Some(name.as_str()))
        {
            let names: Vec<&str> = known.iter().filter_map(|arg| arg.get_long()).collect();
            bail!(
                "unknown setting {key:?}: use one of {}, or [{PROJECTS_TABLE}.NAME] tables",
                names.join(", ")
            );
        }
        let Some(arg) = own.iter().find(|arg| arg.get_long() == Some(name.as_str())) else {
            continue;
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

/// The table of per-project settings.
const PROJECTS_TABLE: &str = "projects";

/// `--project-retention NAME=DAYS,CONTENT_DAYS` for each `[projects.NAME]` table.
fn project_arguments(value: &toml::Value) -> anyhow::Result<Vec<OsString>> {
    let Some(projects) = value.as_table() else {
        bail!(
            "[{PROJECTS_TABLE}] must hold one table per project, such as [{PROJECTS_TABLE}.support]"
        );
    };
    let mut extra = Vec::new();
    for (project, settings) in projects {
        let Some(settings) = settings.as_table() else {
            bail!("[{PROJECTS_TABLE}.{project}] must be a table");
        };
        let mut days = [String::new(), String::new()];
        for (key, value) in settings {
            let slot = match key.replace('_', "-").as_str() {
                "retention-days" => 0,
                "content-retention-days" => 1,
                _ => bail!(
                    "unknown setting {key:?} in [{PROJECTS_TABLE}.{project}]: use retention-days, content-retention-days"
                ),
            };
            let Some(number) = value.as_integer().filter(|n| *n >= 0) else {
                bail!("{key:?} in [{PROJECTS_TABLE}.{project}] must be a whole number of days");
            };
            days[slot] = number.to_string();
        }
        extra.push(OsString::from("--project-retention"));
        extra.push(OsString::from(format!("{project}={},{}", days[0], days[1])));
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
        added_for(&["serve"], text, serve_args, env)
    }

    fn added_for(
        command: &[&str],
        text: &str,
        own_args: &[&str],
        env: &[&str],
    ) -> anyhow::Result<Vec<String>> {
        let extra = arguments_from(text, command, &args(own_args), |name| env.contains(&name))?;
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
    fn project_tables_become_project_retention_and_retention_run_takes_its_settings() {
        let file = r#"
            listen = "0.0.0.0:9000"
            retention-days = 30
            [projects.support]
            retention-days = 7
            content_retention_days = 1
            [projects.audit]
            retention-days = 365
        "#;
        let serve = added(file, &[], &[]).unwrap();
        assert_eq!(
            serve,
            [
                "--listen",
                "0.0.0.0:9000",
                "--project-retention",
                "audit=365,",
                "--project-retention",
                "support=7,1",
                "--retention-days",
                "30",
            ]
        );
        // The same without the server's own settings.
        let run = added_for(&["retention", "run"], file, &[], &[]).unwrap();
        assert_eq!(run, serve[2..]);
        let error = added("[projects.x]\nkeep = 1", &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("unknown setting \"keep\" in [projects.x]"),
            "{error}"
        );
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
