//! Tells the crate whether RocksDB comes from the system (Debian's librocksdb, see
//! `.cargo/config.toml`) so that `rocksdb_compat` can fill the one C symbol it lacks.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(system_rocksdb)");
    println!("cargo:rerun-if-env-changed=ROCKSDB_LIB_DIR");
    println!("cargo:rerun-if-env-changed=ROCKSDB_COMPILE");
    let compile = std::env::var("ROCKSDB_COMPILE")
        .map(|v| v == "1" || v.eq_ignore_ascii_case("true"))
        .unwrap_or(false);
    if std::env::var_os("ROCKSDB_LIB_DIR").is_some() && !compile {
        println!("cargo:rustc-cfg=system_rocksdb");
    }
}
