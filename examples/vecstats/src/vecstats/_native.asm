; vecstats._native: the mean of a list of numbers, in x86-64 assembly.
;
; Shows what pymult does not: a C-API type object passed by address
; (PyList_Type for the "O!" format), a loop over a list, SSE2 floating point,
; callee-saved registers kept in the frame, and Python exceptions raised
; (ValueError) or passed on (TypeError from PyFloat_AsDouble).

%include "wheelwright.inc"

PYIMPORT PyArg_ParseTuple, PyList_Size, PyList_GetItem, PyFloat_AsDouble
PYIMPORT PyErr_Occurred, PyErr_SetString, PyFloat_FromDouble, PyModule_Create2
PYIMPORT_DATA PyList_Type, PyExc_ValueError

section .data
align 8
methods:
    PYMETHOD s_mean, mean, METH_VARARGS, s_mean_doc
    PYMETHOD_END
moduledef:
    PYMODULEDEF s_module, s_module_doc, methods

align 8
minus_one:      dq -1.0
s_module:       db "vecstats._native", 0
s_module_doc:   db "Statistics over lists of numbers, in x86-64 assembly.", 0
s_mean:         db "mean", 0
s_mean_doc:     db "mean(values: list) -> float", 10, 10
                db "Arithmetic mean of a non-empty list of numbers.", 0
s_format:       db "O!:mean", 0
s_empty:        db "mean() of an empty list", 0

section .text

; PyObject *mean(PyObject *self, PyObject *args)
%define LIST   [rbp-8]
%define SAVED_RBX [rbp-16]
%define SAVED_R12 [rbp-24]
%define SUM    [rbp-32]
%define ITEM   [rbp-40]
mean:
    FUNCTION_BEGIN 40
    mov SAVED_RBX, rbx                ; rbx and r12 belong to our caller
    mov SAVED_R12, r12

    mov ARG1, ARG2                    ; PyArg_ParseTuple(args, "O!:mean", &PyList_Type, &list)
    lea ARG2, [rel s_format]
    PYDATA ARG3, PyList_Type
    lea ARG4, LIST
    PYCALL_VARARGS PyArg_ParseTuple
    test eax, eax
    jz .fail

    mov ARG1, LIST
    PYCALL PyList_Size
    mov rbx, rax                      ; rbx = n
    test rbx, rbx
    jz .empty

    xor r12d, r12d                    ; r12 = i
    pxor xmm0, xmm0
    movsd SUM, xmm0
.next:
    mov ARG1, LIST
    mov ARG2, r12
    PYCALL PyList_GetItem             ; borrowed reference
    mov ARG1, rax
    PYCALL PyFloat_AsDouble           ; xmm0; -1.0 with an exception set on error
    ucomisd xmm0, [rel minus_one]
    jp .add                           ; NaN is a value, not an error
    jne .add
    movsd ITEM, xmm0                  ; a real -1.0, or an error?
    PYCALL PyErr_Occurred
    test rax, rax
    jnz .fail
    movsd xmm0, ITEM
.add:
    addsd xmm0, SUM
    movsd SUM, xmm0
    inc r12
    cmp r12, rbx
    jl .next

    movsd xmm0, SUM
    cvtsi2sd xmm1, rbx
    divsd xmm0, xmm1
    PYCALL PyFloat_FromDouble         ; first double argument: xmm0 on both ABIs
    jmp .done

.empty:
    PYDATA rax, PyExc_ValueError
    mov ARG1, [rax]
    lea ARG2, [rel s_empty]
    PYCALL PyErr_SetString
.fail:
    xor eax, eax
.done:
    mov rbx, SAVED_RBX
    mov r12, SAVED_R12
    FUNCTION_END

PYINIT _native
    FUNCTION_BEGIN 0
    lea ARG1, [rel moduledef]
    mov ARG2d, PYTHON_ABI_VERSION
    PYCALL PyModule_Create2
    FUNCTION_END
