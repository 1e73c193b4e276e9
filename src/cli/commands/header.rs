//! `chainsmith header HEX160`: decode one header.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use chainsmith::Header;
use serde::Serialize;

use crate::cli::args::HeaderArgs;
use crate::cli::format::utc;

/// `header --json`: the header's fields, its hash, its target and whether the hash meets it.
#[derive(Serialize)]
struct HeaderReport {
    hash: String,
    version: i32,
    prev_hash: String,
    merkle_root: String,
    time: u32,
    /// 8 hex digits.
    bits: String,
    nonce: u32,
    /// 64 hex digits.
    target: String,
    meets_target: bool,
}

pub(crate) fn run(args: &HeaderArgs) -> Result<ExitCode> {
    let header = Header::from_hex(&args.hex).context("header")?;
    let hash = header.block_hash();
    let decoded = header.bits.decode();
    let usable = header.bits.to_target();
    let meets = usable.is_ok_and(|t| t.is_met_by(hash));
    let mut out = std::io::stdout().lock();
    if args.json {
        let report = HeaderReport {
            hash: hash.to_string(),
            version: header.version,
            prev_hash: header.prev_hash.to_string(),
            merkle_root: header.merkle_root.to_string(),
            time: header.time,
            bits: header.bits.to_string(),
            nonce: header.nonce,
            target: decoded.value.to_string(),
            meets_target: meets,
        };
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        let target_note = match usable {
            Ok(_) => String::new(),
            Err(e) => format!("  ({e})"),
        };
        writeln!(out, "hash          {hash}")?;
        writeln!(
            out,
            "version       {} (0x{:08x})",
            header.version, header.version
        )?;
        writeln!(out, "prev_hash     {}", header.prev_hash)?;
        writeln!(out, "merkle_root   {}", header.merkle_root)?;
        writeln!(out, "time          {} ({})", header.time, utc(header.time))?;
        writeln!(out, "bits          {}", header.bits)?;
        writeln!(out, "nonce         {}", header.nonce)?;
        writeln!(out, "target        {}{target_note}", decoded.value)?;
        writeln!(out, "meets_target  {}", if meets { "yes" } else { "no" })?;
    }
    Ok(ExitCode::SUCCESS)
}
