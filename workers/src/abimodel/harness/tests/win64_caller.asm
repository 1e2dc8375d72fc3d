; A Win64 caller for the bridge tests, written independently of the bridge
; generator: win64_call(target, slots, out) (System V) loads argument i of a
; Win64 call from slots[i] (0-3 into both rcx/rdx/r8/r9 and xmm0-3, as a
; variadic caller does; 4-7 on the stack above the 32-byte shadow space),
; fills rdi, rsi, xmm6 and xmm15 (callee-saved under Win64) with markers,
; calls target and writes rax, xmm0, rdi, rsi, xmm6, xmm15 to out[0..5].
bits 64
default rel
section .note.GNU-stack noalloc noexec nowrite progbits
section .text
global win64_call:function
win64_call:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    sub rsp, 72                       ; 32 shadow + 4 stack arguments + alignment
    mov rbx, rdx
    mov r12, rdi
    mov rax, [rsi + 32]
    mov [rsp + 32], rax
    mov rax, [rsi + 40]
    mov [rsp + 40], rax
    mov rax, [rsi + 48]
    mov [rsp + 48], rax
    mov rax, [rsi + 56]
    mov [rsp + 56], rax
    mov rcx, [rsi]
    movq xmm0, rcx
    mov rdx, [rsi + 8]
    movq xmm1, rdx
    mov r8, [rsi + 16]
    movq xmm2, r8
    mov r9, [rsi + 24]
    movq xmm3, r9
    mov rax, 0x3333333333333333
    movq xmm6, rax
    mov rax, 0x4444444444444444
    movq xmm15, rax
    mov rdi, 0x1111111111111111
    mov rsi, 0x2222222222222222
    call r12
    mov [rbx], rax
    movq [rbx + 8], xmm0
    mov [rbx + 16], rdi
    mov [rbx + 24], rsi
    movq [rbx + 32], xmm6
    movq [rbx + 40], xmm15
    add rsp, 72
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret
