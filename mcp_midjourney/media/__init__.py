"""Images on their way from the web or Discord to the model or the disk.

fetch (the SSRF-guarded GET every image goes through), preview (downscale for the model), save (the finished
images in ``MJ_DOWNLOAD_DIR``), mask (Vary (Region)'s mask). Only preview and mask load Pillow, so importing
this package or `media.fetch` stays cheap at start-up.
"""
