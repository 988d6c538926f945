"""Analytics on the products, straight from the bucket: xarray (rioxarray + Dask) for indices, heights and
volumes, change between runs and zonal statistics, and derived rasters published back as products and map layers.

Start with :func:`workbench.analysis.products.open_product`; ``notebooks/06_analysis.ipynb`` shows every step.
"""
