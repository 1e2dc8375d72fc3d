; pymult: multiply two Python integers in x86-64 assembly.
;
; The article's version, done right for Linux, macOS and Windows from one source:
; a 64-bit result (not truncated to 32 bits), OverflowError instead of a silent
; wrap-around, callee-saved registers left alone, no global state, the Win64
; shadow space, and PyMethodDef/PyModuleDef with their real padding.

%include "wheelwright.inc"

PYIMPORT PyArg_ParseTuple, PyLong_FromLongLong, PyErr_SetString, PyModule_Create2
PYIMPORT_DATA PyExc_OverflowError

section .data
align 8
methods:
    PYMETHOD s_multiply, multiply, METH_VARARGS, s_multiply_doc
    PYMETHOD_END
moduledef:
    PYMODULEDEF s_module, s_module_doc, methods

s_module:       db "pymult", 0
s_module_doc:   db "Integer multiplication written in x86-64 assembly.", 0
s_multiply:     db "multiply", 0
s_multiply_doc: db "multiply(a, b) -> int", 10, 10
                db "Return a * b for two signed 64-bit integers.", 0
s_format:       db "LL:multiply", 0
s_overflow:     db "multiply: result does not fit in a signed 64-bit integer", 0

section .text

; PyObject *multiply(PyObject *self, PyObject *args)
multiply:
    FUNCTION_BEGIN 16                 ; [rbp-8] = a, [rbp-16] = b
    mov ARG1, ARG2                    ; args
    lea ARG2, [rel s_format]
    lea ARG3, [rbp-8]
    lea ARG4, [rbp-16]
    PYCALL_VARARGS PyArg_ParseTuple
    test eax, eax
    jz .fail                          ; TypeError/OverflowError already set
    mov rax, [rbp-8]
    imul rax, [rbp-16]
    jo .overflow
    mov ARG1, rax
    PYCALL PyLong_FromLongLong
    FUNCTION_END
.overflow:
    PYDATA rax, PyExc_OverflowError   ; rax = &PyExc_OverflowError
    mov ARG1, [rax]
    lea ARG2, [rel s_overflow]
    PYCALL PyErr_SetString
.fail:
    xor eax, eax
    FUNCTION_END

PYINIT pymult
    FUNCTION_BEGIN 0
    lea ARG1, [rel moduledef]
    mov ARG2d, PYTHON_ABI_VERSION
    PYCALL PyModule_Create2
    FUNCTION_END
