// ESM entry of oxlock/fast-locky: the Locky class.
import Locky from './fast-locky.js'

export default Locky
