//! From policy text to a [`Policy`] that cannot be invalid, with positioned errors.
//!
//! Syntax and shape errors come from serde/toml with their span; every semantic check
//! below uses the `Spanned` raw value so its error points at the offending text. The
//! compiler collects all semantic errors instead of stopping at the first.
//!
//! Every section has its own submodule: [`settings`] (`[client]`, `[prefixes]`,
//! `[tables]`, `[routes]`, `[lists]`), [`rules`], [`fair_share`], [`store`], and one per economics section, each
//! turning its raw struct into the model type the engine or the economics half uses.

mod accounts;
mod fair_share;
mod ledger;
mod pow;
mod quotas;
mod rules;
mod settings;
mod store;

use crate::lang::error::{rewrite_serde_message, PolicyError, PolicyErrors};
use crate::lang::model::Policy;
use crate::lang::raw::RawPolicy;
use crate::lang::section::SectionError;
use rules::build_rule;
use settings::{build_client, build_lists, build_prefixes, build_routes, build_tables};
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Default cap on tracked keys per limit table (about 100 bytes each: ~10 MB per table).
pub const DEFAULT_MAX_KEYS: usize = 100_000;
/// Default interval between sweeps of fresh-equivalent keys.
pub const DEFAULT_SWEEP_SECS: u64 = 60;

/// Compiles policy text. `file_name` is only used in error messages; list files
/// (`file = ...`) need [`compile_file`] because there is no directory to resolve them in.
pub fn compile_str(file_name: &str, source: &str) -> Result<Policy, PolicyErrors> {
    compile(file_name, source, None)
}

/// Compiles a policy file; list files are read relative to its directory.
pub fn compile_file(path: &Path) -> Result<Policy, PolicyErrors> {
    let name = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|e| {
        PolicyErrors(vec![PolicyError {
            file: name.clone(),
            line: 1,
            col: 1,
            message: format!("cannot read policy file: {e}"),
        }])
    })?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut policy = compile(&name, &source, Some(&dir))?;
    policy.source_files.insert(0, path.to_path_buf());
    Ok(policy)
}

struct Ctx<'a> {
    file: &'a str,
    src: &'a str,
    dir: Option<&'a Path>,
    errs: Vec<PolicyError>,
    files: Vec<PathBuf>,
}

impl Ctx<'_> {
    fn err(&mut self, span: Range<usize>, msg: impl Into<String>) {
        let e = PolicyError::at(self.file, self.src, span.start, msg);
        self.errs.push(e);
    }
}

fn compile(file: &str, src: &str, dir: Option<&Path>) -> Result<Policy, PolicyErrors> {
    let raw: RawPolicy = toml::from_str(src).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        let msg = rewrite_serde_message(e.message()).replace('\n', "; ");
        PolicyErrors(vec![PolicyError::at(file, src, at, msg)])
    })?;
    let mut cx = Ctx { file, src, dir, errs: Vec::new(), files: Vec::new() };
    let policy = build(&mut cx, raw);
    if cx.errs.is_empty() {
        Ok(policy)
    } else {
        cx.errs.sort_by_key(|e| (e.file != cx.file, e.file.clone(), e.line, e.col));
        Err(PolicyErrors(cx.errs))
    }
}

fn build(cx: &mut Ctx<'_>, raw: RawPolicy) -> Policy {
    if *raw.version.get_ref() != 1 {
        cx.err(
            raw.version.span(),
            format!(
                "unsupported policy version {}; this build understands version = 1",
                raw.version.get_ref()
            ),
        );
    }
    let accounts = build_section(cx, "accounts", raw.accounts, accounts::compile_accounts);
    let quotas = build_section(cx, "quotas", raw.quotas, quotas::compile_quotas);
    let costs = build_section(cx, "costs", raw.costs, ledger::compile_costs);
    let budgets = build_section(cx, "budgets", raw.budgets, ledger::compile_budgets);
    let pow = build_section(cx, "pow", raw.pow, pow::compile_pow);
    let client = build_client(cx, raw.client);
    let prefixes = build_prefixes(cx, raw.prefixes);
    let tables = build_tables(cx, raw.tables);
    let routes = build_routes(cx, raw.routes);
    let lists = build_lists(cx, raw.lists);
    let fair_share = fair_share::build_fair_share(cx, raw.fair_share);
    let on_store_error = store::build_store(cx, raw.store);
    let mut rules = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in raw.rule {
        let span = r.span();
        let r = r.into_inner();
        let name = r.name.get_ref().clone();
        if let Some(line) = seen.get(&name) {
            cx.err(
                r.name.span(),
                format!("duplicate rule name \"{name}\" (first defined on line {line})"),
            );
        } else {
            seen.insert(name.clone(), crate::lang::error::line_col(cx.src, r.name.span().start).0);
        }
        if let Some(rule) = build_rule(cx, r, span, &lists, on_store_error) {
            rules.push(rule);
        }
    }
    Policy {
        client,
        prefixes,
        tables,
        routes,
        lists,
        rules,
        source_files: std::mem::take(&mut cx.files),
        accounts,
        quotas,
        costs,
        budgets,
        pow,
        fair_share,
    }
}

/// Compiles one of `[accounts]`, `[quotas]`, `[costs]`, `[budgets]`, `[pow]` with its
/// module's compiler; an absent section compiles its empty form, so the defaults live
/// in one place (the module). The raw section was deserialized as part of the whole
/// file, so each error's span is already an offset into `cx.src`; an error without one
/// is placed at the section's header.
fn build_section<R: Default, T: Default>(
    cx: &mut Ctx<'_>,
    name: &str,
    raw: Option<R>,
    compile: fn(&R) -> Result<T, Vec<SectionError>>,
) -> T {
    match compile(&raw.unwrap_or_default()) {
        Ok(t) => t,
        Err(errors) => {
            for e in errors {
                let at = e.span.map_or_else(|| section_offset(cx.src, name), |s| s.start);
                cx.errs.push(PolicyError::at(cx.file, cx.src, at, e.message));
            }
            T::default()
        }
    }
}

/// Byte offset of the first line that opens `[name]` (or `[name.x]`, `[[name.x]]`, or
/// `name = ...` / `name.x = ...`), else 0. Only used to place errors that have no span
/// of their own: toml cannot span an implicit table, so the header is found textually.
fn section_offset(src: &str, name: &str) -> usize {
    let mut offset = 0;
    for line in src.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let header = trimmed.trim_start_matches('[').trim_start();
        let rest = if trimmed.starts_with('[') {
            header.strip_prefix(name)
        } else {
            trimmed.strip_prefix(name)
        };
        let follows = rest.map(str::trim_start).and_then(|r| r.chars().next());
        let opens = if trimmed.starts_with('[') {
            matches!(follows, Some(']' | '.'))
        } else {
            matches!(follows, Some('=' | '.'))
        };
        if opens {
            return offset + indent;
        }
        offset += line.len();
    }
    0
}

#[cfg(test)]
mod tests {
    use super::section_offset;

    #[test]
    fn section_headers_are_found_in_every_form() {
        let src = "version = 1\n[rule_x]\n  [[budgets.limit]]\nkey = 1\n";
        assert_eq!(&src[section_offset(src, "budgets")..][..10], "[[budgets.");
        let src = "version = 1\npow = { max_factor = 2 }\n";
        assert_eq!(&src[section_offset(src, "pow")..][..5], "pow =");
        let src = "version = 1\npowder = 1\n[costs]\n";
        assert_eq!(section_offset(src, "pow"), 0, "a longer name is not the section");
        assert_eq!(&src[section_offset(src, "costs")..], "[costs]\n");
    }
}
