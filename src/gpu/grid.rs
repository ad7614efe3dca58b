//! Dispatch grids: how many workgroups, laid out how, so that no dispatch exceeds the
//! device's per-dimension limit (65,535 on most adapters). Every op's host side sizes its
//! dispatches here; `kernels-tests/dispatch.rs` checks the splits cover every workgroup once.

use crate::{Error, Result};

/// Invocations per workgroup of the flat (element-wise) kernels.
pub const WORKGROUP: u64 = 256;

/// Grid for `n` invocations in rows of at most `max` workgroups of 256: (groups, row stride).
pub fn grid_2d(op: &'static str, n: u64, max: u32) -> Result<([u32; 3], u32)> {
    grid_2d_wg(op, n, WORKGROUP as u32, max)
}

/// `grid_2d` for workgroups of `wg` invocations.
pub fn grid_2d_wg(op: &'static str, n: u64, wg: u32, max: u32) -> Result<([u32; 3], u32)> {
    let wg = wg as u64;
    let groups = n.div_ceil(wg).max(1);
    if groups <= max as u64 {
        return Ok(([groups as u32, 1, 1], (groups * wg) as u32));
    }
    let rows = groups.div_ceil(max as u64);
    if rows > max as u64 {
        return Err(Error::Limit { op, what: "elements in one dispatch".into(), got: n, limit: max as u64 * max as u64 * wg });
    }
    Ok(([max, rows as u32, 1], max * wg as u32))
}

/// Splits a grid of workgroups into dispatches of at most `max` per dimension:
/// returns (first workgroup, workgroup count) per dispatch.
pub fn split_grid(groups: [u32; 3], max: u32) -> Vec<([u32; 3], [u32; 3])> {
    let spans = |total: u32| -> Vec<(u32, u32)> { (0..total.div_ceil(max)).map(|i| (i * max, (total - i * max).min(max))).collect() };
    let mut out = Vec::new();
    for &(z0, zn) in &spans(groups[2]) {
        for &(y0, yn) in &spans(groups[1]) {
            for &(x0, xn) in &spans(groups[0]) {
                out.push(([x0, y0, z0], [xn, yn, zn]));
            }
        }
    }
    out
}
