//! Every flag `--help` lists (the subcommands' too) is in the operations guide, with its
//! environment variable.

use clap::CommandFactory;
use tandem_server::Cli;

#[test]
fn every_flag_and_its_variable_is_in_the_operations_guide() {
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/operations.md"
    ))
    .expect("docs/operations.md");
    let command = Cli::command();
    let mut missing = Vec::new();
    let arguments = command.get_arguments().chain(
        command
            .get_subcommands()
            .flat_map(|sub| sub.get_arguments()),
    );
    for argument in arguments {
        let Some(long) = argument.get_long() else {
            continue;
        };
        if matches!(long, "help" | "version") {
            continue;
        }
        if !guide.contains(&format!("`--{long}`")) {
            missing.push(format!("--{long}"));
        }
        if let Some(variable) = argument.get_env() {
            let variable = variable.to_string_lossy();
            if !guide.contains(&*variable) {
                missing.push(variable.into_owned());
            }
        }
    }
    assert!(missing.is_empty(), "not in docs/operations.md: {missing:?}");
}

#[test]
fn empty_secrets_are_refused() {
    use clap::Parser;
    for flag in ["--auth-jwt-secret", "--admin-token"] {
        let parsed = Cli::try_parse_from(["tandem-server", flag, ""]);
        let error = parsed.expect_err("an empty secret was taken").to_string();
        assert!(error.contains("must not be empty"), "{flag}: {error}");
        assert!(Cli::try_parse_from(["tandem-server", flag, "s3cret"]).is_ok());
    }
    let cluster = [
        "tandem-server",
        "--postgres",
        "postgres://localhost/x",
        "--cluster-advertise",
        "ws://127.0.0.1:0",
        "--cluster-secret",
    ];
    let empty = Cli::try_parse_from(cluster.iter().copied().chain([""]));
    assert!(empty.is_err(), "an empty cluster secret was taken");
    assert!(Cli::try_parse_from(cluster.iter().copied().chain(["s3cret"])).is_ok());
}
