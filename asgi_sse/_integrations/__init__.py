"""Integrations with other libraries: the Starlette response, OpenTelemetry metrics,
JSON Schema, OpenAPI and AsyncAPI. Each imports its library (Starlette,
opentelemetry-api) only where it is used; may import every layer below.
"""
