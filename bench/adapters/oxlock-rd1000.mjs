// oxlock with retryDelay 1000 ms (S5x only; worker.mjs's S5X_SETTINGS): the same adapter, so
// a waiter in another process that gets the key quickly was woken by the unlock's publish
// (oxlock:freed:<key>), not by its retry timer.
export { memory, redis } from './oxlock.mjs'

export const name = 'oxlock-rd1000'
