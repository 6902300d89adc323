"""The text formats answers are written in: strict JSON with canonical bytes (`jsontext`) and the `<tool_call>`
element (`toolcall`).
"""
