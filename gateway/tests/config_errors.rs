//! One fixture per configuration error: `fixtures/config/NAME.toml` must fail to load
//! with exactly the text in `NAME.expected`, `FILE:LINE:COL: message` (set BLESS=1 to
//! write missing `.expected` files for review). A fixture that must load says
//! `<loaded without error>`. The `.pem` and `.txt` files are the TLS fixtures' files.

use std::path::Path;

use gateway::config::GatewayConfig;

const LOADED: &str = "<loaded without error>";

#[test]
fn every_config_fixture_loads_with_its_exact_message() {
    let dir = Path::new("tests/fixtures/config");
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).expect("fixture dir").flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => {}
            Some("expected") => {
                if !path.with_extension("toml").exists() {
                    failures.push(format!("{}: no .toml beside it", path.display()));
                }
                continue;
            }
            _ => continue,
        }
        let expected_path = path.with_extension("expected");
        let got = match GatewayConfig::load(&path) {
            Ok(_) => LOADED.to_string(),
            Err(e) => e.to_string(),
        };
        match std::fs::read_to_string(&expected_path) {
            Ok(want) if want.trim_end() == got => {}
            Ok(want) => failures.push(format!(
                "{}:\n  want: {}\n  got:  {got}",
                path.display(),
                want.trim_end()
            )),
            Err(_) if std::env::var_os("BLESS").is_some() => {
                std::fs::write(&expected_path, format!("{got}\n")).expect("write expected");
            }
            Err(_) => failures.push(format!("{}: no .expected file (got: {got})", path.display())),
        }
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} fixtures found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every error but an unreadable file is located: the fixtures' messages all carry a
/// line and a column.
#[test]
fn every_fixture_error_names_a_line_and_column() {
    let dir = Path::new("tests/fixtures/config");
    for entry in std::fs::read_dir(dir).expect("fixture dir").flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        if let Err(e) = GatewayConfig::load(&path) {
            assert!(e.line >= 1 && e.column >= 1, "{e}");
            assert!(
                e.to_string().starts_with(&format!("{}:{}:{}: ", path.display(), e.line, e.column)),
                "{e}"
            );
        }
    }
}

#[test]
fn a_missing_file_is_named() {
    let e = GatewayConfig::load(Path::new("tests/fixtures/config/no-such-file.toml"))
        .expect_err("missing");
    assert_eq!(
        e.to_string(),
        "tests/fixtures/config/no-such-file.toml: cannot read the configuration file: No such file or directory (os error 2)"
    );
}
