//! Version gates: nginx-sys reports the version of the nginx it was built
//! against (vendored 1.28, or the tree named by NGINX_SOURCE_DIR /
//! NGINX_BUILD_DIR, e.g. Debian's 1.22) as DEP_NGINX_VERSION_NUMBER, and
//! each gate below becomes a `cfg` the code tests.

/// (first nginx version with the change, cfg name).
const GATES: &[(u64, &str)] = &[
    // 1.27.0: proxy/uwsgi/... `*_limit_rate` take variables
    // (`ngx_http_upstream_conf_t.limit_rate` is a complex value).
    (1_027_000, "ngx_limit_rate_complex"),
];

fn main() {
    for (_, name) in GATES {
        println!("cargo::rustc-check-cfg=cfg({name})");
    }
    println!("cargo::rerun-if-env-changed=DEP_NGINX_VERSION_NUMBER");
    let version: u64 = std::env::var("DEP_NGINX_VERSION_NUMBER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for (since, name) in GATES {
        if version >= *since {
            println!("cargo::rustc-cfg={name}");
        }
    }
}
