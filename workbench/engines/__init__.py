"""Processing engines: images in the bucket in, products in the bucket out."""
