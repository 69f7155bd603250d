"""What both faces show, built once: tables and curves as plain data (tables), their
Rich rendering (render), pictures, formatting, PNG export. No torch, no Textual.
"""
