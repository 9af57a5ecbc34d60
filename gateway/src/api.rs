//! The API the gateway serves, loaded from its sources and swapped whole on reload.
//!
//! A [`Table`] is one version of the API: its routes (each with its backends resolved), its
//! descriptors and the OpenAPI document describing them. [`Api`] holds the current table behind
//! an atomic pointer: a reload (SIGHUP, the reflection interval) builds a new table beside the
//! old one and swaps it in; requests in flight keep the table they started with. A reload that
//! fails leaves the old table serving and says why.

use crate::openapi::ApiInfo;
use crate::routes::{Route, RouteTable};
use crate::rules::{RuleError, Selection, select_bindings};
use crate::sources::{ApiSources, LoadError, pool_of, read_files};
use crate::upstream::UpstreamError;
use crate::upstreams::Upstreams;
use arc_swap::ArcSwap;
use prost_reflect::DescriptorPool;
use std::sync::Arc;

/// One version of the API.
pub struct Table {
    /// The routes, most specific first.
    pub routes: RouteTable,
    /// Every loaded descriptor (the built-in google.rpc types included).
    pub pool: DescriptorPool,
    /// The OpenAPI document of the routes, as served.
    pub openapi_yaml: String,
    pub openapi_json: String,
}

/// Why the gateway cannot serve its configuration. At start-up this ends the process with
/// exit status 2, as clap's usage errors do; on reload it keeps the old table.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Rules(#[from] RuleError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Tls(#[from] switchyard_common::tls::TlsError),
    #[error("no --backend serves {0}: give a default --backend URL, or one keyed by a pattern that matches it")]
    NoBackend(String),
    #[error("{0}")]
    Other(String),
}

/// Where the API comes from, and what to do with it.
pub struct ApiConfig {
    /// The descriptor sets, protos and reflection to load.
    pub sources: ApiSources,
    /// Which services to serve.
    pub selection: Selection,
    /// What to serve when no source is given (the reference services), as an encoded
    /// FileDescriptorSet.
    pub default_set: Option<&'static [u8]>,
    /// How the document describes the API.
    pub info: ApiInfo,
}

/// The current table, and how to make the next one.
pub struct Api {
    config: ApiConfig,
    upstreams: Arc<Upstreams>,
    current: ArcSwap<Table>,
}

impl Api {
    /// Loads the API for the first time.
    pub async fn load(config: ApiConfig, upstreams: Arc<Upstreams>) -> Result<Self, ConfigError> {
        let table = build(&config, &upstreams).await?;
        Ok(Api { config, upstreams, current: ArcSwap::from_pointee(table) })
    }

    /// The table to serve a request with.
    pub fn table(&self) -> Arc<Table> {
        self.current.load_full()
    }

    /// The backends.
    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    /// The backends, shared (for the health checker).
    pub fn upstreams_arc(&self) -> Arc<Upstreams> {
        self.upstreams.clone()
    }

    /// Reads the sources again and swaps in the new table; on failure the old one stays and
    /// the error says why (file and line for a `.proto`).
    pub async fn reload(&self) -> Result<(), ConfigError> {
        let table = build(&self.config, &self.upstreams).await?;
        let routes = table.routes.bindings().count();
        self.current.store(Arc::new(table));
        tracing::info!(routes, "API reloaded");
        Ok(())
    }

    /// Whether the sources can change while the gateway runs (anything but the built-in API).
    pub fn reloadable(&self) -> bool {
        !self.config.sources.is_empty()
    }

    /// Whether the API comes from the backends' reflection.
    pub fn reflects(&self) -> bool {
        self.config.sources.reflect
    }
}

/// Loads every source and compiles the table.
async fn build(config: &ApiConfig, upstreams: &Upstreams) -> Result<Table, ConfigError> {
    let mut sets = read_files(&config.sources)?;
    if config.sources.reflect {
        for upstream in upstreams.all() {
            sets.push((format!("reflection of {}", upstream.name()), crate::reflect::fetch(upstream).await?));
        }
    }
    if config.sources.is_empty()
        && let Some(default) = config.default_set
    {
        sets.push(("the built-in reference API".into(), default.to_vec()));
    }
    let pool = pool_of(&sets)?;
    compile(pool, &config.selection, upstreams, &config.info)
}

/// The table of `pool`'s selected services.
pub fn compile(
    pool: DescriptorPool,
    selection: &Selection,
    upstreams: &Upstreams,
    info: &ApiInfo,
) -> Result<Table, ConfigError> {
    let bindings = select_bindings(&pool, selection)?;
    let mut routes = Vec::with_capacity(bindings.len());
    for binding in bindings {
        let service = binding.method.parent_service().full_name().to_owned();
        let upstream = upstreams.for_service(&service).ok_or(ConfigError::NoBackend(service))?;
        routes.push(Route { binding, upstream, metrics: Default::default() });
    }
    let routes = RouteTable::new(routes);
    let doc = crate::openapi::document(&pool, routes.bindings(), info);
    Ok(Table {
        openapi_yaml: crate::openapi::to_yaml(&doc),
        openapi_json: serde_json::to_string_pretty(&doc).unwrap_or_default(),
        routes,
        pool,
    })
}
