"""Datasets (convmem's extension): registered sources whose schema is read from the source."""
