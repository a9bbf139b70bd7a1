//! Where an encoder writes: one string, or chunks handed to a writer as they fill, so a
//! large exposition is never held whole.

use std::io::{self, Write};
use std::ops::{Deref, DerefMut};

use super::reader::RENDER_CHUNK_BYTES;

/// The body being rendered. Encoders write through `Deref<Target = String>` and call
/// [`Body::flush_full`] at series boundaries.
pub(crate) struct Body<'w> {
    text: String,
    sink: Option<&'w mut dyn Write>,
    written: u64,
}

impl Body<'static> {
    /// A body kept whole.
    pub(crate) fn whole(capacity: usize) -> Self {
        Body {
            text: String::with_capacity(capacity),
            sink: None,
            written: 0,
        }
    }
}

impl<'w> Body<'w> {
    /// A body handed to `sink` in chunks of about [`RENDER_CHUNK_BYTES`].
    pub(crate) fn chunked(sink: &'w mut dyn Write) -> Self {
        Body {
            // A series may push the chunk past its size: room for one more.
            text: String::with_capacity(RENDER_CHUNK_BYTES + RENDER_CHUNK_BYTES / 4),
            sink: Some(sink),
            written: 0,
        }
    }

    /// Hands the text to the writer once a chunk is full.
    ///
    /// # Errors
    /// The writer's error: the render stops.
    #[inline]
    pub(crate) fn flush_full(&mut self) -> io::Result<()> {
        if self.text.len() >= RENDER_CHUNK_BYTES && self.sink.is_some() {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(sink) = &mut self.sink {
            sink.write_all(self.text.as_bytes())?;
            self.written += self.text.len() as u64;
            self.text.clear();
        }
        Ok(())
    }

    /// Hands over the rest; returns the text (empty when chunked) and the bytes written.
    ///
    /// # Errors
    /// The writer's error.
    pub(crate) fn finish(mut self) -> io::Result<(String, u64)> {
        self.flush()?;
        if let Some(sink) = &mut self.sink {
            sink.flush()?;
        }
        let written = self.written + self.text.len() as u64;
        Ok((self.text, written))
    }
}

impl Deref for Body<'_> {
    type Target = String;

    fn deref(&self) -> &String {
        &self.text
    }
}

impl DerefMut for Body<'_> {
    fn deref_mut(&mut self) -> &mut String {
        &mut self.text
    }
}
