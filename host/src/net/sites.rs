//! `impl Host` for leashed:net/sites: an interpreted guest's own frames for the audit's sites.
//!
//! The guest attaches its frames just before a lend or a drop; the import that lends or drops
//! takes them when it captures its site ([`guest_site`]), and they stand in the site where the
//! interpreter's frames begin. What a guest attaches is bounded before it is kept: at most
//! [`MAX_OWN_FRAMES`] frames of at most [`MAX_OWN_FRAME_BYTES`] bytes each.

use crate::audit::site;
use crate::bindings::sites::leashed::net::sites::Host;
use crate::state::HostState;
use wasmtime::component::{Access, HasSelf};

/// The most frames an `attach` keeps (the innermost ones).
pub const MAX_OWN_FRAMES: usize = site::MAX_SITE_FRAMES;

/// The longest frame an `attach` keeps; a longer one is cut.
pub const MAX_OWN_FRAME_BYTES: usize = 256;

impl Host for HostState {
    fn wanted(&mut self) -> bool {
        self.policy.audit_detail
    }

    fn attach(&mut self, frames: Vec<String>) {
        if !self.policy.audit_detail {
            return;
        }
        let kept = frames.into_iter().take(MAX_OWN_FRAMES).map(|frame| cut(frame, MAX_OWN_FRAME_BYTES)).collect();
        self.own_frames = Some(kept);
    }
}

/// The guest's site for a lend or a drop, if the policy records sites: its wasm backtrace, with
/// the frames it attached (if any) where the interpreter's frames begin.
pub fn guest_site(access: &mut Access<'_, HostState, HasSelf<HostState>>) -> Vec<String> {
    if !access.get().policy.audit_detail {
        return Vec::new();
    }
    let own = access.get().own_frames.take();
    let wasm = site::capture(&*access);
    match own {
        Some(own) => site::with_own_frames(wasm, own),
        None => wasm,
    }
}

/// `frame`, at most `max` bytes (cut at a character boundary, marked with `…`).
fn cut(mut frame: String, max: usize) -> String {
    if frame.len() > max {
        let mut end = max;
        while !frame.is_char_boundary(end) {
            end -= 1;
        }
        frame.truncate(end);
        frame.push('…');
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attached frames are bounded in number and length, and only kept when sites are wanted.
    #[test]
    fn attached_frames_are_bounded() {
        let mut state = HostState::new(crate::policy::Policy::default());
        assert!(state.wanted());
        let frames: Vec<String> = (0..500).map(|i| format!("app.py:{i} f{}", "x".repeat(i))).collect();
        state.attach(frames);
        let kept = state.own_frames.clone().unwrap();
        assert_eq!(kept.len(), MAX_OWN_FRAMES);
        assert!(kept.iter().all(|f| f.len() <= MAX_OWN_FRAME_BYTES + '…'.len_utf8()), "{kept:?}");
        assert_eq!(kept[0], "app.py:0 f");

        let mut quiet = HostState::new(crate::policy::Policy { audit_detail: false, ..Default::default() });
        assert!(!quiet.wanted());
        quiet.attach(vec!["app.py:1 f".into()]);
        assert!(quiet.own_frames.is_none());
    }
}
