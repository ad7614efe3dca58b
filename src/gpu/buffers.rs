//! The buffer pool: a training loop asks for the same sizes every step, so buffers released by
//! dropped tensors are handed out again and nothing is allocated after the first step.
//! `created()` counts real allocations, which tests use to prove it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

struct Entry {
    id: u64,
    buffer: wgpu::Buffer,
    capacity: u64,
}

/// Device buffers by size class, handed out again when the tensors holding them are dropped.
pub struct BufferPool {
    device: wgpu::Device,
    usage: wgpu::BufferUsages,
    label: &'static str,
    free: Mutex<HashMap<u64, Vec<Entry>>>,
    next_id: AtomicU64,
    created: AtomicU64,
}

/// Sizes are rounded up to a class so that near sizes share buffers: powers of two up to
/// 1 MiB, multiples of 1 MiB above. Always a multiple of 256 (binding offsets, copies).
pub fn size_class(bytes: u64) -> u64 {
    const MIB: u64 = 1 << 20;
    let b = bytes.max(256);
    if b <= MIB {
        b.next_power_of_two()
    } else {
        b.div_ceil(MIB) * MIB
    }
}

impl BufferPool {
    /// An empty pool whose buffers are created on `device` with `usage`, labelled `label`.
    pub fn new(device: wgpu::Device, usage: wgpu::BufferUsages, label: &'static str) -> Arc<Self> {
        Arc::new(Self { device, usage, label, free: Mutex::new(HashMap::new()), next_id: AtomicU64::new(1), created: AtomicU64::new(0) })
    }

    /// A buffer of at least `bytes` bytes (contents unspecified).
    pub fn get(self: &Arc<Self>, bytes: u64) -> GpuBuffer {
        let capacity = size_class(bytes);
        let reused = self.free.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&capacity).and_then(|v| v.pop());
        let entry = reused.unwrap_or_else(|| {
            self.created.fetch_add(1, Ordering::Relaxed);
            Entry {
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                buffer: self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(self.label),
                    size: capacity,
                    usage: self.usage,
                    mapped_at_creation: false,
                }),
                capacity,
            }
        });
        GpuBuffer { shared: Arc::new(Shared { entry: Some(entry), pool: self.clone() }), offset: 0, bytes }
    }

    /// How many buffers this pool has ever allocated from the device.
    pub fn created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }

    /// Frees every buffer not in use.
    pub fn trim(&self) {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn release(&self, e: Entry) {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).entry(e.capacity).or_default().push(e);
    }
}

/// The device buffer behind one or more `GpuBuffer` views; back to the pool when the last
/// view is dropped.
struct Shared {
    entry: Option<Entry>,
    pool: Arc<BufferPool>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(e) = self.entry.take() {
            self.pool.release(e);
        }
    }
}

/// A byte range of a device buffer on loan from a `BufferPool`. Usually the whole allocation; an
/// arena hands out several views of one buffer (offsets aligned for binding), so whole-model
/// operations can bind all of it at once.
pub struct GpuBuffer {
    shared: Arc<Shared>,
    offset: u64,
    bytes: u64,
}

impl GpuBuffer {
    fn entry(&self) -> &Entry {
        // Only `Shared::drop` takes the entry out.
        self.shared.entry.as_ref().expect("GpuBuffer used after drop")
    }

    /// The whole device buffer (bind or copy it at [`offset`](Self::offset), [`bytes`](Self::bytes) long).
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.entry().buffer
    }

    /// Stable identity of the underlying buffer (survives reuse through the pool; keys the
    /// bind-group cache together with offset and size).
    pub fn id(&self) -> u64 {
        self.entry().id
    }

    /// Byte offset of this view in the underlying buffer.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes of this view (the buffer may be larger).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// A view of `bytes` bytes at `offset` bytes into this one, sharing the buffer.
    pub fn view(&self, offset: u64, bytes: u64) -> GpuBuffer {
        debug_assert!(offset + bytes <= self.bytes);
        GpuBuffer { shared: self.shared.clone(), offset: self.offset + offset, bytes }
    }

    /// The view starting where this one starts, `bytes` long (may reach past this view's end,
    /// not past the buffer's).
    pub(crate) fn widen(&self, bytes: u64) -> GpuBuffer {
        debug_assert!(self.offset + bytes <= self.entry().capacity);
        GpuBuffer { shared: self.shared.clone(), offset: self.offset, bytes }
    }

    /// Whether `other` is a view of the same device buffer.
    pub fn same_buffer(&self, other: &GpuBuffer) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl std::fmt::Debug for GpuBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBuffer(#{}, {} bytes at {})", self.shared.entry.as_ref().map_or(0, |e| e.id), self.bytes, self.offset)
    }
}
