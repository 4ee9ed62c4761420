//! One fixture per compile error: `fixtures/errors/NAME.toml` must fail with exactly the
//! text in `NAME.expected` (set BLESS=1 to write missing `.expected` files for review).

use std::path::Path;

#[test]
fn every_error_fixture_fails_with_its_exact_message() {
    let dir = Path::new("tests/fixtures/errors");
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).expect("fixture dir").flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let expected_path = path.with_extension("expected");
        let got = match policy::compile_file(&path) {
            Ok(_) => "<compiled without error>".to_string(),
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
    assert!(checked >= 25, "only {checked} fixtures found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
