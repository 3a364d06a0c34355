//! Static builds against musl link Debian's `libseccomp.a`, which was compiled for glibc
//! with `_FORTIFY_SOURCE`. Of glibc's fortified entry points it needs only `__fprintf_chk`,
//! called from libseccomp's PFC text export (`seccomp_export_pfc`), which Berth never uses.
//! This definition satisfies the linker; should it ever run, it writes nothing and reports
//! failure, as `fprintf` does on error. The variadic arguments are ignored, which the x86-64
//! and aarch64 C calling conventions allow.

use std::ffi::{c_char, c_int, c_void};

/// # Safety
/// Never dereferences its arguments.
#[no_mangle]
pub unsafe extern "C" fn __fprintf_chk(
    _stream: *mut c_void,
    _flag: c_int,
    _format: *const c_char,
) -> c_int {
    -1
}
