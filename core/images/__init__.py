"""Images from files: geometry, pixel decoding, volume assembly, Open Other, export, thumbnails."""
