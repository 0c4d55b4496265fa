//! Recycled output buffers.
//!
//! A model run in a loop allocates the same intermediate sizes every time;
//! freshly allocated large buffers cost page faults (the allocator hands the
//! memory back to the system between runs). The model returns f32 buffers it
//! frees here and kernels take their outputs from here, so after the first
//! run a model stops allocating its big intermediates.

use std::cell::Cell;
use std::sync::{Mutex, PoisonError};
use std::thread::LocalKey;

use crate::value::Value;

/// Buffers kept at most; the smallest goes when a larger one comes back.
const KEEP: usize = 16;

/// A model's free f32 buffers.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    free: Mutex<Vec<Vec<f32>>>,
}

impl Scratch {
    /// A buffer of `len` zeros: the smallest free one that fits, or a new one.
    pub(crate) fn zeros(&self, len: usize) -> Vec<f32> {
        let mut v = self.any(len);
        v.fill(0.0);
        v
    }

    /// A buffer of `len` floats holding whatever they held before, for an
    /// output the caller writes whole (skipping a pass that zeroes it).
    /// Buffers that held at least `len` floats come first: a shorter one is
    /// zero-filled up to `len`.
    pub(crate) fn any(&self, len: usize) -> Vec<f32> {
        let reused = {
            let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
            let fit = |long_enough: fn(&Vec<f32>, usize) -> bool| {
                let fits = free.iter().enumerate().filter(|(_, v)| long_enough(v, len));
                fits.min_by_key(|(_, v)| v.capacity()).map(|(i, _)| i)
            };
            let fit = fit(|v, len| v.len() >= len).or_else(|| fit(|v, len| v.capacity() >= len));
            fit.map(|i| free.swap_remove(i))
        };
        match reused {
            Some(mut v) => {
                v.truncate(len);
                v.resize(len, 0.0);
                v
            }
            None => vec![0.0; len],
        }
    }

    /// Keeps the buffer of an f32 value no longer needed.
    pub(crate) fn recycle(&self, value: Value) {
        let Value::F32(a) = value else { return };
        let (v, offset) = a.into_raw_vec_and_offset();
        if offset.unwrap_or(0) == 0 {
            self.keep(v);
        }
    }

    /// Keeps a buffer no longer needed.
    pub(crate) fn keep(&self, v: Vec<f32>) {
        if v.capacity() == 0 {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        if free.len() < KEEP {
            free.push(v);
        } else if let Some(smallest) = free.iter_mut().min_by_key(|v| v.capacity())
            && smallest.capacity() < v.capacity()
        {
            *smallest = v;
        }
    }
}

/// A thread's work buffer (one thread-local slot per use), taken for one
/// task and given back when dropped: kept between tasks, grown when a task
/// needs more, never shrunk and never zeroed (its users write every float
/// they read). A task started on this thread while another holds the buffer
/// (work stealing) takes an empty one.
pub(crate) struct ThreadBuffer {
    slot: &'static LocalKey<Cell<Vec<f32>>>,
    data: Vec<f32>,
}

impl ThreadBuffer {
    pub(crate) fn take(slot: &'static LocalKey<Cell<Vec<f32>>>) -> Self {
        ThreadBuffer { slot, data: slot.take() }
    }

    /// `len` floats from the first cache-line boundary (64 bytes), holding
    /// stale values. Vector loads and stores then never straddle two lines:
    /// the allocator aligns large buffers to 16 bytes, and every 64-byte
    /// access of the products and transforms split in two.
    pub(crate) fn first(&mut self, len: usize) -> &mut [f32] {
        const LINE_FLOATS: usize = 64 / size_of::<f32>();
        if self.data.len() < len + LINE_FLOATS {
            self.data.resize(len + LINE_FLOATS, 0.0);
        }
        let skip = self.data.as_ptr().align_offset(64).min(LINE_FLOATS);
        &mut self.data[skip..skip + len]
    }
}

impl Drop for ThreadBuffer {
    fn drop(&mut self) {
        let data = std::mem::take(&mut self.data);
        // Nothing to give back to while the thread's storage is torn down.
        let _ = self.slot.try_with(|slot| slot.set(data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static TEST_BUFFER: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    }

    #[test]
    fn thread_buffers_are_line_aligned_and_kept() {
        for len in [1, 17, 1000, 4096] {
            let mut buffer = ThreadBuffer::take(&TEST_BUFFER);
            let slice = buffer.first(len);
            assert_eq!((slice.len(), slice.as_ptr() as usize % 64), (len, 0), "{len} floats");
            slice.fill(len as f32);
        }
        // The next task on this thread finds the last one's values; a task
        // nested in it (while the buffer is taken) gets a fresh buffer.
        let mut outer = ThreadBuffer::take(&TEST_BUFFER);
        assert!(outer.first(4096).iter().all(|&v| v == 4096.0));
        let mut inner = ThreadBuffer::take(&TEST_BUFFER);
        assert_eq!(inner.data.capacity(), 0);
        assert_eq!(inner.first(3).len(), 3);
    }

    #[test]
    fn reuses_the_smallest_buffer_that_fits_and_zeroes_it() {
        let scratch = Scratch::default();
        scratch.recycle(Value::F32(ndarray::ArrayD::from_elem(ndarray::IxDyn(&[100]), 7.0)));
        scratch.recycle(Value::F32(ndarray::ArrayD::from_elem(ndarray::IxDyn(&[10]), 7.0)));
        let v = scratch.zeros(8);
        assert!(v.capacity() >= 10 && v.capacity() < 100, "best fit");
        assert_eq!(v, vec![0.0; 8]);
        let w = scratch.zeros(50);
        assert!(w.capacity() >= 100);
        assert_eq!(w, vec![0.0; 50]);
        assert_eq!(scratch.zeros(3).len(), 3, "nothing left: a new buffer");
        // `any` skips the zeroing: a recycled buffer keeps its values.
        scratch.recycle(Value::F32(ndarray::ArrayD::from_elem(ndarray::IxDyn(&[20]), 7.0)));
        assert_eq!(scratch.any(12), vec![7.0; 12]);
        assert_eq!(scratch.any(12), vec![0.0; 12], "a new buffer");
    }
}
