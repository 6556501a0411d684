/** The data bench servers are seeded with, shared by the server process and the load generator. */
export const BENCH_USER = { username: 'bench_user', password: 'bench-password-1' }
/** Logins rotate over this many users (bench_user_0…), as real logins come from different people. */
export const LOGIN_USERS = 64
export const SEEDED_MESSAGES = 1000
export const BENCH_SECRET = 'bench-secret-bench-secret-bench-secret-0123'
