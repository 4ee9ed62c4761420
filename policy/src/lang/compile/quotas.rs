//! `[quotas]` -> [`QuotaSpec`], never above the platform's published limits.

use crate::economics::quota::{
    QuotaSpec, PLATFORM_MAX_ASSET_FILES, PLATFORM_MAX_ASSET_FILE_BYTES, PLATFORM_MAX_D1_DATABASES,
    PLATFORM_MAX_HYPERDRIVE_CONFIGS, PLATFORM_MAX_QUEUES,
};
use crate::lang::raw::economics::RawQuotas;
use crate::lang::section::{non_negative, positive, SectionError};
use serde_spanned::Spanned;

/// Validates `[quotas]`.
pub(crate) fn compile_quotas(raw: &RawQuotas) -> Result<QuotaSpec, Vec<SectionError>> {
    let d = QuotaSpec::default();
    let mut errors = Vec::new();
    let capped = |v: &Option<Spanned<i64>>,
                  name: &str,
                  default: u64,
                  platform: u64,
                  errors: &mut Vec<SectionError>| {
        let n = non_negative(v, name, default, errors);
        if let Some(v) = v {
            if n > platform {
                errors.push(SectionError::at(
                    v,
                    format!(
                        "{name} = {n} is above the platform's published limit of {platform} for temporary accounts; \
                         the platform would refuse the extra ones anyway (use at most {platform})"
                    ),
                ));
            }
        }
        n
    };
    let spec = QuotaSpec {
        max_worker_scripts: non_negative(
            &raw.max_worker_scripts,
            "max_worker_scripts",
            d.max_worker_scripts,
            &mut errors,
        ),
        max_kv_namespaces: non_negative(
            &raw.max_kv_namespaces,
            "max_kv_namespaces",
            d.max_kv_namespaces,
            &mut errors,
        ),
        max_d1_databases: capped(
            &raw.max_d1_databases,
            "max_d1_databases",
            d.max_d1_databases,
            PLATFORM_MAX_D1_DATABASES,
            &mut errors,
        ),
        max_queues: capped(
            &raw.max_queues,
            "max_queues",
            d.max_queues,
            PLATFORM_MAX_QUEUES,
            &mut errors,
        ),
        max_hyperdrive_configs: capped(
            &raw.max_hyperdrive_configs,
            "max_hyperdrive_configs",
            d.max_hyperdrive_configs,
            PLATFORM_MAX_HYPERDRIVE_CONFIGS,
            &mut errors,
        ),
        max_asset_files: capped(
            &raw.max_asset_files,
            "max_asset_files",
            d.max_asset_files,
            PLATFORM_MAX_ASSET_FILES,
            &mut errors,
        ),
        max_asset_file_bytes: capped(
            &raw.max_asset_file_bytes,
            "max_asset_file_bytes",
            d.max_asset_file_bytes,
            PLATFORM_MAX_ASSET_FILE_BYTES,
            &mut errors,
        ),
        max_body_bytes: positive(
            &raw.max_body_bytes,
            "max_body_bytes",
            d.max_body_bytes,
            &mut errors,
        ),
    };
    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(errors)
    }
}
